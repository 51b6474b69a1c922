"""The lower bound: the loop a user writes by hand with diffusers + peft (diffusers'
train_text_to_image_lora.py).

Same model file (loaded with the project's loader so both sides hold identical weights), same photos, same
LoRA target modules (kohya's default, written out below: every Linear and Conv2d inside the UNet's
Transformer2DModel blocks, which is what the trainer targets), rank, alpha, batch, precision, AdamW, gradient
clipping, DDPM noise/timesteps and epsilon loss. Every step decodes the JPEGs and resizes them (the
example's `Resize(resolution, BILINEAR)` + `CenterCrop` + `Normalize([0.5], [0.5])`, written with PIL since
torchvision is not a dependency) in a DataLoader with the example's default `num_workers=0`, and encodes the
images with the VAE and the captions with the text encoder, as the example does.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from peft import LoraConfig
from PIL import Image
from torch import nn

from lora_scripts.config import ModelConfig
from lora_scripts.models.loader import load_components


def diffusers_preprocess(path: Path, resolution: int) -> torch.Tensor:
    """image.convert("RGB") -> Resize(resolution, BILINEAR) -> CenterCrop(resolution) -> [-1, 1] tensor."""
    img = Image.open(path).convert("RGB")
    scale = resolution / min(img.size)
    size = (max(resolution, int(img.width * scale)), max(resolution, int(img.height * scale)))
    img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = (img.width - resolution) // 2, (img.height - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    pixels = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


class Photos(torch.utils.data.Dataset):
    def __init__(self, folder: Path, resolution: int):
        with open(folder / "metadata.csv", encoding="utf-8") as handle:
            self.rows = [(folder / r["filename"], r["prompt"]) for r in csv.DictReader(handle)]
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        path, caption = self.rows[i]
        return diffusers_preprocess(path, self.resolution), caption


def kohya_unet_targets(unet: nn.Module) -> list[str]:
    """kohya sd-scripts' default LoRA targets: every Linear / Conv2d inside a Transformer2DModel block."""
    return sorted(
        f"{block_name}.{name}"
        for block_name, block in unet.named_modules()
        if type(block).__name__ == "Transformer2DModel"
        for name, child in block.named_modules()
        if name and isinstance(child, (nn.Linear, nn.Conv2d))
    )


def train_bare(spec: dict, total_steps: int) -> dict:
    """Train `total_steps` optimiser steps (timed from outside by bench/clock.py); returns the losses."""
    acc = Accelerator(mixed_precision="no", cpu=spec["device"] == "cpu")
    torch.manual_seed(spec["seed"])
    parts = load_components(ModelConfig(base_model=spec["model"]))
    unet, vae, text_encoder, tokenizer = parts.unet, parts.vae, parts.text_encoder, parts.tokenizer
    noise_scheduler = parts.noise_scheduler
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
        module.to(acc.device)

    # LoRA on the same modules the project targets, via diffusers' peft integration.
    targets = kohya_unet_targets(unet)
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
        Photos(Path(spec["data"]), spec["resolution"]),
        batch_size=spec["batch_size"],
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
        num_workers=0,
    )
    unet, optimizer, loader = acc.prepare(unet, optimizer, loader)
    unet.train()

    losses: list[float] = []
    while len(losses) < total_steps:
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
            if len(losses) >= total_steps:
                break
    return {"losses": losses, "lora_modules": len(targets)}
