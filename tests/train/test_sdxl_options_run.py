"""The kohya options on SDXL in real runs of the tiny SDXL model: its two text encoders, size conditioning and
pooled embedding take them all, and the saved file is an SDXL kohya LoRA that records them."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))["diffusers"]


@pytest.fixture()
def kept(monkeypatch) -> dict:
    """The run's trainer, as run_training makes it, keeping its model, optimiser and each step's items."""
    kept: dict = {"items": []}

    class Keeping(run_module.Trainer):
        def loss_for(self, items, generator=None, part=None):
            kept["items"] += items
            return super().loss_for(items, generator, part)

        def train(self):
            kept.update(model=self.model, optimizer=self.optimizer)
            return super().train()

    monkeypatch.setattr(run_module, "Trainer", Keeping)
    return kept


def _config(base_config: dict, folder, **extra) -> dict:
    """The suite's tiny run (64 px, rank 4, batch 2) on the tiny SDXL, 3 steps."""
    return {**base_config, "base_model": str(folder), "output_name": "xl", "max_train_steps": 3, **extra}


def _saved(result) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    assert result.lora_path.is_file()
    with safe_open(str(result.lora_path), framework="pt") as f:
        meta = f.metadata()
    weights = load_file(result.lora_path)
    assert weights and all(k.startswith("lora_unet_") for k in weights)  # kohya's SDXL UNet names (SGM)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight" in weights
    assert all(torch.isfinite(v).all() for v in weights.values())
    ups = [v for k, v in weights.items() if k.endswith("lora_up.weight")]
    assert ups and any(v.abs().sum() > 0 for v in ups)  # it trained
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    return weights, meta


def test_an_sdxl_run_with_many_kohya_options_trains_and_saves(sdxl_folder, base_config, tmp_path, kept):
    reg = tmp_path / "reg" / "1_device"
    reg.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (60 * i, 80, 120)).save(reg / f"r{i}.png")
    cfg = build_config(
        _config(
            base_config,
            sdxl_folder,
            lr_scheduler="cosine_with_restarts",
            lr_scheduler_num_cycles=2,
            lr_warmup_steps=1,
            min_snr_gamma=5,
            noise_offset=0.05,
            adaptive_noise_scale=0.005,
            multires_noise_iterations=4,
            multires_noise_discount=0.3,
            ip_noise_gamma=0.1,
            loss_type="huber",
            huber_c=0.1,
            caption_dropout_rate=0.2,
            shuffle_caption=True,
            keep_tokens=1,
            flip_aug=True,
            reg_data_dir=str(tmp_path / "reg"),
            prior_loss_weight=0.5,
            loraplus_lr_ratio=4,
        )
    )
    result = run_training(cfg)
    assert result.steps == 3 and len(result.losses) == 3 and all(map(math.isfinite, result.losses))
    _, meta = _saved(result)
    assert meta["ss_v_parameterization"] == "False" and meta["modelspec.prediction_type"] == "epsilon"
    recorded = {
        "ss_min_snr_gamma": "5",
        "ss_loss_type": "huber",
        "ss_multires_noise_iterations": "4",
        "ss_ip_noise_gamma": "0.1",
        "ss_shuffle_caption": "True",
        "ss_keep_tokens": "1",
        "ss_flip_aug": "True",
        "ss_prior_loss_weight": "0.5",
        "ss_loraplus_lr_ratio": "4",
        "ss_lr_scheduler": "cosine_with_restarts",
    }
    got = {k: meta.get(k) for k in recorded}
    assert {k: v.removesuffix(".0") if v else v for k, v in got.items()} == recorded
    assert {i.loss_weight for i in kept["items"]} == {1.0, 0.5}  # reg images reached the steps, weighted
    rates = {g["initial_lr"] for g in kept["optimizer"].param_groups}
    assert rates == {1e-3, 4e-3}  # LoRA+: the up weights learn loraplus_lr_ratio times faster


def test_an_sdxl_v_prediction_run_with_zero_terminal_snr(sdxl_folder, base_config, kept):
    cfg = build_config(_config(base_config, sdxl_folder, v_parameterization=True, zero_terminal_snr=True))
    result = run_training(cfg)
    assert result.steps == 3 and all(map(math.isfinite, result.losses))
    model = kept["model"]
    assert model.prediction_type == "v_prediction"
    assert model.noise_scheduler.config.prediction_type == "v_prediction"
    assert float(model.noise_scheduler.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-8)  # SNR 0 at the end
    _, meta = _saved(result)
    assert meta["ss_v_parameterization"] == "True" and meta["modelspec.prediction_type"] == "v"
    assert meta["ss_zero_terminal_snr"] == "True"
