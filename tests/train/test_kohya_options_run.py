"""The kohya options together in one real run: the loop, accelerate and the saved file take all of them."""

from __future__ import annotations

import math

import torch
from PIL import Image
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.train.run import run_training


def test_a_run_with_many_kohya_options_trains_and_saves(base_config, tmp_path):
    reg = tmp_path / "reg" / "1_device"
    reg.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (64, 64), (60 * i, 80, 120)).save(reg / f"r{i}.png")
    cfg = build_config(
        {
            **base_config,
            "max_train_steps": 4,
            "optimizer_type": "AdamW8bit",
            "optimizer_args": ["betas=0.9,0.99"],
            "lr_scheduler": "cosine_with_restarts",
            "lr_scheduler_num_cycles": 2,
            "lr_warmup_steps": 1,
            "min_snr_gamma": 5,
            "noise_offset": 0.05,
            "adaptive_noise_scale": 0.005,
            "multires_noise_iterations": 4,
            "ip_noise_gamma": 0.1,
            "loss_type": "smooth_l1",
            "debiased_estimation_loss": True,
            "loraplus_lr_ratio": 4,
            "up_lr_weight": "cosine+0.2",
            "clip_skip": 2,
            "color_aug": True,
            "random_crop": True,
            "flip_aug": True,
            "caption_tag_dropout_rate": 0.1,
            "reg_data_dir": str(tmp_path / "reg"),
            "prior_loss_weight": 0.5,
            "min_timestep": 100,
        }
    )
    result = run_training(cfg)
    assert result.steps == 4 and all(map(math.isfinite, result.losses))
    weights = load_file(result.lora_path)
    ups = [v for k, v in weights.items() if k.endswith("lora_up.weight")]
    assert ups and any(v.abs().sum() > 0 for v in ups)
    assert all(torch.isfinite(v).all() for v in weights.values())
