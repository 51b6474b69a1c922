"""The SDXL lower bound: the loop a user writes by hand with diffusers + peft, in the shape of diffusers'
examples/text_to_image/train_text_to_image_lora_sdxl.py.

Loaded as the example loads it (from_pretrained of each part of the diffusers folder, DDPMScheduler from the
folder's scheduler config); UNet and both text encoders in the compute dtype, the VAE in float32 (the
example's path without an fp16-fix VAE); LoRA through diffusers' peft integration on the trainer's targets
(kohya's default, bench/bare_loop.kohya_unet_targets), LoRA weights in float32; gradient checkpointing,
precision, AdamW, clipping as the trainer's. Every step: the photo decoded, resized (BILINEAR) and
centre-cropped with its original size and crop corner kept for SDXL's time ids, the VAE encode, both text
encoders (penultimate hidden states concatenated, OpenCLIP-G's pooled output), DDPM noise, epsilon MSE.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import cast_training_params
from peft import LoraConfig
from PIL import Image
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .bare_loop import diffusers_preprocess, kohya_unet_targets

DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class SDXLPhotos(torch.utils.data.Dataset):
    """The example's preprocess_train: original size, resize + centre crop, crop corner, both tokenizers."""

    def __init__(self, folder: Path, resolution: int, tokenizers):
        with open(folder / "metadata.csv", encoding="utf-8") as handle:
            self.rows = [(folder / r["filename"], r["prompt"]) for r in csv.DictReader(handle)]
        self.resolution, self.tokenizers = resolution, tokenizers

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        path, caption = self.rows[i]
        with Image.open(path) as img:  # the header: the example reads image.height / width
            width, height = img.size
        scale = self.resolution / min(width, height)
        resized = (max(self.resolution, int(width * scale)), max(self.resolution, int(height * scale)))
        top = max(0, round((resized[1] - self.resolution) / 2))
        left = max(0, round((resized[0] - self.resolution) / 2))
        ids = [
            tok(
                caption,
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids[0]
            for tok in self.tokenizers
        ]
        return {
            "pixel_values": diffusers_preprocess(path, self.resolution),
            "original_size": (height, width),
            "crop_top_left": (top, left),
            "input_ids_one": ids[0],
            "input_ids_two": ids[1],
        }


def collate(examples: list[dict]) -> dict:
    return {
        "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
        "original_sizes": [e["original_size"] for e in examples],
        "crop_top_lefts": [e["crop_top_left"] for e in examples],
        "input_ids_one": torch.stack([e["input_ids_one"] for e in examples]),
        "input_ids_two": torch.stack([e["input_ids_two"] for e in examples]),
    }


def encode_prompt(text_encoders, ids_list) -> tuple[torch.Tensor, torch.Tensor]:
    """The example's encode_prompt: penultimate hidden states of both encoders side by side, pooled output
    of the second."""
    embeds = []
    for encoder, ids in zip(text_encoders, ids_list, strict=True):
        out = encoder(ids.to(encoder.device), output_hidden_states=True, return_dict=False)
        pooled = out[0]
        embeds.append(out[-1][-2])
    return torch.cat(embeds, dim=-1), pooled


def train_sdxl_bare(spec: dict, total_steps: int) -> dict:
    """Train `total_steps` optimiser steps (timed from outside by bench/clock.py); returns the losses."""
    acc = Accelerator(mixed_precision=spec["mixed_precision"], cpu=spec["device"] == "cpu")
    torch.manual_seed(spec["seed"])
    weight_dtype = DTYPES[spec["mixed_precision"]]
    model = spec["model"]
    # Load the tokenizers, models and scheduler
    tokenizers = [CLIPTokenizer.from_pretrained(model, subfolder=s) for s in ("tokenizer", "tokenizer_2")]
    te1 = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
    te2 = CLIPTextModelWithProjection.from_pretrained(model, subfolder="text_encoder_2")
    noise_scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
    # Freeze everything; the VAE stays float32 (SDXL's overflows in fp16), the rest in the compute dtype
    for module in (unet, vae, te1, te2):
        module.requires_grad_(False)
    unet.to(acc.device, dtype=weight_dtype)
    vae.to(acc.device, dtype=torch.float32)
    te1.to(acc.device, dtype=weight_dtype)
    te2.to(acc.device, dtype=weight_dtype)

    # LoRA on the trainer's targets, LoRA weights in float32
    targets = kohya_unet_targets(unet)
    unet.add_adapter(
        LoraConfig(
            r=spec["rank"], lora_alpha=spec["alpha"], init_lora_weights="gaussian", target_modules=targets
        )
    )
    cast_training_params(unet, dtype=torch.float32)
    if spec["gradient_checkpointing"]:
        unet.enable_gradient_checkpointing()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=1e-2)

    loader = torch.utils.data.DataLoader(
        SDXLPhotos(Path(spec["data"]), spec["resolution"], tokenizers),
        batch_size=spec["batch_size"],
        shuffle=True,
        collate_fn=collate,
        drop_last=True,
        num_workers=0,
    )
    unet, optimizer, loader = acc.prepare(unet, optimizer, loader)
    unet.train()
    resolution = (spec["resolution"], spec["resolution"])

    losses: list[float] = []
    while len(losses) < total_steps:
        for batch in loader:
            with acc.accumulate(unet):
                # Convert images to latent space
                pixels = batch["pixel_values"].to(dtype=vae.dtype)
                latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
                latents = latents.to(weight_dtype)
                # Sample noise and a random timestep per image; forward diffusion
                noise = torch.randn_like(latents)
                t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],))
                t = t.to(latents.device).long()
                noisy = noise_scheduler.add_noise(latents, noise, t)
                # SDXL's size conditioning: original size, crop corner, target size
                time_ids = torch.tensor(
                    [
                        list(o + c + resolution)
                        for o, c in zip(batch["original_sizes"], batch["crop_top_lefts"], strict=True)
                    ],
                    device=acc.device,
                    dtype=weight_dtype,
                )
                prompt_embeds, pooled = encode_prompt(
                    (te1, te2), (batch["input_ids_one"], batch["input_ids_two"])
                )
                added = {"time_ids": time_ids, "text_embeds": pooled.to(acc.device)}
                # Predict the noise residual and compute the loss
                pred = unet(noisy, t, prompt_embeds, added_cond_kwargs=added, return_dict=False)[0]
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
