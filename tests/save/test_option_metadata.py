"""The kohya training options a run used are in the LoRA's metadata under kohya's own ss_* names."""

from __future__ import annotations

from safetensors import safe_open

from lora_scripts.config import build_config
from lora_scripts.train.run import run_training


def _meta(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_the_options_of_the_run_are_recorded(base_config, tmp_path):
    options = {"min_snr_gamma": 5.0, "loss_type": "huber", "ip_noise_gamma": 0.1, "color_aug": True}
    lora = run_training(build_config({**base_config, **options, "max_train_steps": 1})).lora_path
    meta = _meta(lora)
    assert meta["ss_min_snr_gamma"] == "5" and meta["ss_loss_type"] == "huber"
    assert meta["ss_ip_noise_gamma"] == "0.1" and meta["ss_color_aug"] == "True"
    assert meta["ss_multires_noise_iterations"] == "0" and meta["ss_zero_terminal_snr"] == "False"
