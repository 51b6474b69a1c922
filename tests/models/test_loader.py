import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_scripts.config import ModelConfig
from lora_scripts.errors import ModelError
from lora_scripts.models.loader import load_components
from lora_scripts.models.tokenizer import clip_tokenizer


def test_single_file_and_diffusers_folder_load_the_same_weights(tiny_model):
    a = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    b = load_components(ModelConfig(base_model=str(tiny_model["diffusers"])))
    for part in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert set(sa) == set(sb)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), part
    assert (a.family, a.prediction_type) == ("sd1", "epsilon")
    assert (b.family, b.prediction_type) == ("sd1", "epsilon")


def test_real_file_extras_are_ignored(tiny_model):
    keys = load_file(tiny_model["single_file"])
    assert "alphas_cumprod" in keys and "model_ema.decay" in keys  # the fixture carries them like real files


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
