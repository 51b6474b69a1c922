"""The lower bound: the loop a user writes by hand with diffusers + peft (diffusers'
train_text_to_image_lora.py).

Same model file (loaded with the project's loader so both sides hold identical weights), same data, same LoRA
target modules (kohya's defaults from `inject.targets`), rank, alpha, batch, precision, AdamW,
gradient clipping, DDPM noise/timesteps and epsilon loss. Every step encodes the images with the VAE and
the captions with the text encoder, as the diffusers example does.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from peft import LoraConfig
from PIL import Image

from lora_scripts.config import ModelConfig
from lora_scripts.inject.targets import unet_targets
from lora_scripts.models.loader import load_components

from .common import reset_peak, rss_mb


class Images(torch.utils.data.Dataset):
    def __init__(self, folder: Path):
        with open(folder / "metadata.csv", encoding="utf-8") as handle:
            self.rows = [(folder / r["filename"], r["prompt"]) for r in csv.DictReader(handle)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        path, caption = self.rows[i]
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(pixels.transpose(2, 0, 1).copy()), caption


def train_bare(spec: dict) -> dict:
    """Train `spec["steps"]` optimiser steps; returns the time of each step and the peak memory."""
    acc = Accelerator(mixed_precision="no", cpu=spec["device"] == "cpu")
    torch.manual_seed(spec["seed"])
    parts = load_components(ModelConfig(base_model=spec["model"]))
    unet, vae, text_encoder, tokenizer = parts.unet, parts.vae, parts.text_encoder, parts.tokenizer
    noise_scheduler = parts.noise_scheduler
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(acc.device)

    # LoRA on the same modules the project targets, via diffusers' peft integration.
    targets = sorted(unet_targets(unet, with_conv=False))
    rank = spec["rank"]
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=targets))
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=1e-2)

    def collate(batch):
        pixels = torch.stack([b[0] for b in batch])
        ids = tokenizer(
            [b[1] for b in batch],
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return pixels, ids

    loader = torch.utils.data.DataLoader(
        Images(Path(spec["data"])),
        batch_size=spec["batch_size"],
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
    )
    unet, optimizer, loader = acc.prepare(unet, optimizer, loader)
    unet.train()

    reset_peak()
    rss_before = rss_mb("VmRSS")
    stamps, losses = [time.perf_counter()], []
    while len(losses) < spec["steps"]:
        for pixels, ids in loader:
            with acc.accumulate(unet):
                # Convert images to latent space
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
                # Sample noise and a random timestep per image; forward diffusion
                noise = torch.randn_like(latents)
                t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],))
                t = t.to(latents.device)
                noisy = noise_scheduler.add_noise(latents, noise, t)
                # Text embedding for conditioning
                cond = text_encoder(ids, return_dict=False)[0]
                # Predict the noise residual and compute the loss
                pred = unet(noisy, t, cond, return_dict=False)[0]
                loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad()
            if acc.sync_gradients:
                losses.append(loss.detach().item())
                stamps.append(time.perf_counter())
            if len(losses) >= spec["steps"]:
                break
    return {
        "step_seconds": [b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        "losses": losses,
        "train_peak_mb": rss_mb("VmHWM"),
        "rss_before_train_mb": rss_before,
        "trainable_params": sum(p.numel() for p in params),
        "lora_modules": len(targets),
    }
