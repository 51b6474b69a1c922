import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_scripts.config import ModelConfig
from lora_scripts.errors import ModelError
from lora_scripts.models.loader import load_components
from lora_scripts.models.tokenizer import clip_tokenizer

PARTS = {  # component -> its weights file in a diffusers folder
    "unet": "unet/diffusion_pytorch_model.safetensors",
    "vae": "vae/diffusion_pytorch_model.safetensors",
    "text_encoder": "text_encoder/model.safetensors",
}
EXTRAS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "model_ema.decay", "model_ema.num_updates")


def _plain(sd: dict) -> dict[str, torch.Tensor]:
    # transformers >= 5.6 dropped CLIPTextModel's `text_model.` level; position_ids is a buffer, not a weight
    return {k.removeprefix("text_model."): v for k, v in sd.items() if not k.endswith("position_ids")}


def _assert_same(got: dict, want: dict, what: str) -> None:
    got, want = _plain(got), _plain(want)
    assert got.keys() == want.keys(), what
    differ = [k for k in want if not torch.equal(got[k], want[k].to(got[k].dtype))]
    assert not differ, f"{what}: {len(differ)} weights differ, first {differ[:3]}"


def test_single_file_and_diffusers_folder_load_the_same_weights(tiny_model):
    """Both routes give the weights the diffusers folder holds, read here with safetensors alone."""
    files = {part: load_file(tiny_model["diffusers"] / name) for part, name in PARTS.items()}
    single = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    folder = load_components(ModelConfig(base_model=str(tiny_model["diffusers"])))
    for part in PARTS:
        _assert_same(getattr(folder, part).state_dict(), files[part], f"diffusers folder {part}")
        _assert_same(getattr(single, part).state_dict(), files[part], f"single file {part}")
    assert (single.family, single.prediction_type) == ("sd1", "epsilon")
    assert (folder.family, folder.prediction_type) == ("sd1", "epsilon")
    assert torch.equal(single.noise_scheduler.alphas_cumprod, folder.noise_scheduler.alphas_cumprod)


def test_real_file_extras_are_ignored(tiny_model, tmp_path):
    """The fixture carries the extra keys v1-5-pruned.safetensors has; loading it gives exactly what the same
    file without them gives, and the schedule is SD's, not read from the file."""
    keys = load_file(tiny_model["single_file"])
    assert all(k in keys for k in EXTRAS)
    stripped = tmp_path / "no_extras.safetensors"
    save_file({k: v for k, v in keys.items() if k not in EXTRAS}, stripped)
    with_extras = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    without = load_components(ModelConfig(base_model=str(stripped)))
    for part in PARTS:
        _assert_same(getattr(with_extras, part).state_dict(), getattr(without, part).state_dict(), part)
    assert (with_extras.family, with_extras.prediction_type) == ("sd1", "epsilon")
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled_linear
    want = torch.cumprod(1 - betas, 0).float()
    assert torch.allclose(with_extras.noise_scheduler.alphas_cumprod, want, rtol=1e-5)


def test_prediction_override(tiny_model):
    parts = load_components(
        ModelConfig(base_model=str(tiny_model["single_file"]), prediction_type="v_prediction")
    )
    assert parts.noise_scheduler.config.prediction_type == "v_prediction"


def test_tokenizer_matches_openai_clip_ids():
    tok = clip_tokenizer()
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip_tokenizer("!").pad_token_id == 0  # SD2 / OpenCLIP padding


def test_sd2_single_file_detected_as_v_prediction(tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lora_scripts.models.ldm_layout import pipeline_to_ldm

    unet = UNet2DConditionModel(
        block_out_channels=(64, 64, 128, 128),
        layers_per_block=2,
        cross_attention_dim=64,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=[1, 1, 2, 2],
        use_linear_projection=True,
        upcast_attention=True,
        sample_size=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(32,) * 4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
    )
    te = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=1,
            hidden_act="gelu",
            vocab_size=49408,
        )
    )
    path = tmp_path / "sd2.safetensors"
    save_file(
        {
            k: v.contiguous()
            for k, v in pipeline_to_ldm(unet.state_dict(), vae.state_dict(), te.state_dict(), "sd2").items()
        },
        path,
    )
    parts = load_components(ModelConfig(base_model=str(path)))
    assert (parts.family, parts.prediction_type) == ("sd2", "v_prediction")
    assert parts.unet.config.use_linear_projection
    assert parts.tokenizer.pad_token_id == 0
    loaded, built = parts.text_encoder.state_dict(), te.state_dict()
    assert set(loaded) == set(built) and all(torch.equal(loaded[k], built[k]) for k in built)
    eps = load_components(ModelConfig(base_model=str(path), prediction_type="epsilon"))
    assert eps.prediction_type == "epsilon"


@pytest.mark.parametrize("case", ["missing", "truncated", "not_a_model", "lora_file", "pickle", "empty_dir"])
def test_bad_base_models_get_a_sentence(tiny_model, tmp_path, case):
    target = tmp_path / "model.safetensors"
    if case == "truncated":
        data = tiny_model["single_file"].read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif case == "not_a_model":
        save_file({"weight": torch.zeros(2)}, target)
    elif case == "lora_file":
        save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, target)
    elif case == "pickle":
        target = tmp_path / "model.ckpt"
        shutil.copy(tiny_model["single_file"], target)
    elif case == "empty_dir":
        target = tmp_path / "folder"
        target.mkdir()
    with pytest.raises(ModelError) as err:
        load_components(ModelConfig(base_model=str(target)))
    message = str(err.value)
    assert str(target.name) in message and message.endswith(".") and "\n" not in message


def test_pickle_advice_names_allow_pickle_only_where_the_config_has_it(tmp_path):
    from lora_scripts.models.detect import locate

    ckpt = tmp_path / "base.ckpt"
    ckpt.write_bytes(b"never unpickled")
    with pytest.raises(ModelError, match=r"is a pickle checkpoint.*set allow_pickle: true in the config"):
        locate(str(ckpt), allow_pickle=False)  # a training config: the key exists
    with pytest.raises(ModelError) as err:
        locate(str(ckpt))  # the lora tools, generate: no such option
    assert "allow_pickle" not in str(err.value) and "this command loads no pickle files" in str(err.value)
