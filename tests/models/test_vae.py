"""`vae` (kohya's --vae): another VAE in place of the base model's, from the files people keep in WebUI's
models/VAE (LDM names, with or without `first_stage_model.`), a diffusers VAE file or folder; it encodes the
training images, is named in the LoRA (ss_vae_name), and keys the disk latent cache by its encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from lora_scripts.config import ModelConfig, build_config, load_config
from lora_scripts.data.dataset import ImageItem
from lora_scripts.data.latent_cache import LatentCache
from lora_scripts.errors import ModelError
from lora_scripts.models.ldm_layout import vae_to_ldm
from lora_scripts.models.registry import load_model
from lora_scripts.models.tiny import build_tiny_sd
from lora_scripts.models.tiny_sdxl import build_tiny_sdxl
from lora_scripts.models.vae import encoder_id
from lora_scripts.train.run import run_training


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory):
    """The VAE of a tiny SD model with other weights, written the three ways users have VAEs."""
    folder = tmp_path_factory.mktemp("vae")
    vae = build_tiny_sd(seed=7).vae
    weights = {k: v.contiguous() for k, v in vae.state_dict().items()}
    ldm = vae_to_ldm(weights)  # first_stage_model.* as in a full checkpoint
    bare = {k.removeprefix("first_stage_model."): v for k, v in ldm.items()}  # vae-ft-mse-840000 style
    save_file(bare, folder / "webui-vae.safetensors")
    save_file(ldm, folder / "prefixed.safetensors")
    save_file(weights, folder / "diffusers-vae.safetensors")
    vae.save_pretrained(folder / "diffusers")
    return vae, folder


@pytest.mark.parametrize(
    "name", ["webui-vae.safetensors", "prefixed.safetensors", "diffusers-vae.safetensors", "diffusers"]
)
def test_each_kind_of_vae_file_replaces_the_base_vae_weight_for_weight(tiny_model, other_vae, name):
    vae, folder = other_vae
    base = load_model(ModelConfig(base_model=str(tiny_model["single_file"])))
    model = load_model(ModelConfig(base_model=str(tiny_model["single_file"]), vae=str(folder / name)))
    want, got = vae.state_dict(), model.vae.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    assert not torch.equal(base.vae.state_dict()["decoder.conv_out.weight"], got["decoder.conv_out.weight"])
    assert model.vae.config.scaling_factor == base.vae.config.scaling_factor  # the base family's
    assert encoder_id(model.vae) != encoder_id(base.vae)


def test_a_vae_of_another_architecture_or_a_pickle_is_one_sentence(tiny_model, tmp_path):
    xl = {k: v.contiguous() for k, v in build_tiny_sdxl(seed=1).vae.state_dict().items()}
    small = {k: v for k, v in xl.items() if not k.startswith("decoder.")}  # a file missing half its tensors
    save_file(small, tmp_path / "half.safetensors")
    with pytest.raises(
        ModelError, match=r"VAE '.*half.safetensors' does not fit the base model's VAE \(\d+ tensors missing"
    ):
        load_model(
            ModelConfig(base_model=str(tiny_model["single_file"]), vae=str(tmp_path / "half.safetensors"))
        )
    (tmp_path / "v.pt").write_bytes(b"not looked at")
    with pytest.raises(ModelError, match="is a pickle file, which can run hidden code.*allow_pickle: true"):
        load_model(ModelConfig(base_model=str(tiny_model["single_file"]), vae=str(tmp_path / "v.pt")))


def test_the_disk_latent_cache_is_keyed_by_the_encoder(tmp_path):
    """Latents cached with one VAE's encoder are not read for another's (before, the key was the image)."""
    base, other = build_tiny_sd(seed=0).vae, build_tiny_sd(seed=7).vae
    decoder_only = build_tiny_sd(seed=0).vae
    with torch.no_grad():
        decoder_only.decoder.conv_out.weight.mul_(2)  # ft-mse: only the decoder retrained
    assert encoder_id(base) == encoder_id(decoder_only) != encoder_id(other)
    (tmp_path / "a.png").write_bytes(b"png")
    item = ImageItem(tmp_path / "a.png", "neon", 1, (64, 64), (64, 64))
    names = {LatentCache(None, tmp_path, encoder_id(v))._file(item).name for v in (base, decoder_only, other)}
    assert len(names) == 2


def test_a_run_with_a_vae_names_it_in_the_lora_and_a_missing_one_stops_at_once(
    base_config, other_vae, tmp_path, cli
):
    _, folder = other_vae
    cfg = build_config({**base_config, "vae": str(folder / "webui-vae.safetensors"), "max_train_steps": 1})
    result = run_training(cfg)
    with safe_open(str(result.lora_path), framework="pt") as f:
        assert f.metadata()["ss_vae_name"] == "webui-vae.safetensors"
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({**base_config, "vae": str(tmp_path / "nowhere.safetensors")}), encoding="utf-8"
    )
    done = cli("train", "-c", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "VAE '" in done.stderr and "nowhere.safetensors' does not exist" in done.stderr


def test_kohyas_vae_key_is_read(tmp_path):
    """It was refused ("the base model's own VAE is used here"); kohya_ss GUI's empty "vae" stays unset."""
    for value, expected in (
        (
            '"models/VAE/vae-ft-mse-840000-ema-pruned.safetensors"',
            "models/VAE/vae-ft-mse-840000-ema-pruned.safetensors",
        ),
        ('""', None),
    ):
        path = tmp_path / "kohya.toml"
        path.write_text(
            f'pretrained_model_name_or_path = "m.safetensors"\ntrain_data_dir = "img"\nvae = {value}\n',
            encoding="utf-8",
        )
        assert load_config(path).model.vae == expected


def test_generate_decodes_with_the_given_vae_and_names_it(tiny_model, other_vae, tmp_path, cli):
    _, folder = other_vae
    fast = ["-m", str(tiny_model["single_file"]), "-W", "64", "-H", "64", "--steps", "2", "--seeds", "3"]
    made = {}
    for name, extra in (("base", []), ("other", ["--vae", str(folder / "webui-vae.safetensors")])):
        done = cli("generate", "neon phone", *fast, "--device", "cpu", "-o", str(tmp_path / name), *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        (made[name],) = (tmp_path / name).glob("0*.png")
    base, other = (Image.open(made[k]) for k in ("base", "other"))
    assert (
        np.abs(np.asarray(base, dtype=int) - np.asarray(other, dtype=int)).max() > 8
    )  # same latents, other decoder
    assert "VAE: webui-vae.safetensors" in other.text["parameters"] and "VAE" not in base.text["parameters"]
    missing = cli("generate", "neon phone", *fast, "--vae", str(tmp_path / "nowhere.safetensors"))
    assert missing.returncode == 2 and "VAE '" in missing.stderr and "does not exist" in missing.stderr


def _vae_error(tmp_path, case: str) -> str:
    from lora_scripts.models.vae import load_vae

    path = tmp_path / {"missing": "no.safetensors", "text": "vae.txt", "pickle": "vae.pt"}.get(case, case)
    if case in ("text", "pickle"):
        path.write_bytes(b"never read")
    elif case == "damaged.safetensors":
        path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    elif case == "other.safetensors":
        save_file({"decoder.conv_in.weight": torch.zeros(2, 2)}, path)
    elif case.startswith("folder"):
        path.mkdir()
        if case == "folder_bad_config":
            (path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError) as err:
        load_vae(str(path), build_tiny_sd(seed=0).vae)
    return str(err.value)


@pytest.mark.parametrize(
    ("case", "english", "chinese"),
    [
        ("missing", "does not exist", "检查 VAE 的路径"),
        ("text", "is not a .safetensors file", "VAE 要填 .safetensors 文件"),
        ("folder_empty", "has no config.json", "VAE 要填 .safetensors 文件"),
        ("pickle", "is a pickle file", "改用 .safetensors 格式的 VAE"),
        ("damaged.safetensors", "cannot be read", "重新下载"),
        ("folder_bad_config", "cannot be loaded", "重新下载"),
        ("other.safetensors", "does not fit the base model's VAE", "同一系列的 VAE"),
    ],
)
def test_each_vae_error_has_a_chinese_hint(tmp_path, case, english, chinese):
    from lora_scripts.errors_zh import hint_zh

    message = _vae_error(tmp_path, case)
    assert english in message and chinese in (hint_zh(message) or ""), (message, hint_zh(message))


def test_a_missing_vae_gets_the_chinese_hint_in_generate_and_a_batch_job(
    cli, tiny_model, tmp_path, monkeypatch
):
    from lora_scripts.errors_zh import hint_zh

    monkeypatch.setenv("LORA_SCRIPTS_LANG", "zh")
    missing = tmp_path / "vae-ft-mse.safetensors"
    done = cli("generate", "phone", "-m", str(tiny_model["single_file"]), "--vae", str(missing))
    assert done.returncode == 2 and f"VAE '{missing}' does not exist" in done.stderr, done.stderr
    assert "怎么办：检查 VAE 的路径" in done.stderr and "Traceback" not in done.stderr
    assert "检查 VAE 的路径" in hint_zh("VAE 'v.safetensors' in /jobs/job.yaml does not exist. Fix the path.")
