"""`model` section: which base checkpoint to train on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Section


class ModelConfig(Section):
    base_model: str = Field(
        ...,
        description="Base Stable Diffusion model: a single-file .safetensors checkpoint (the file WebUI "
        "uses), "
        "a diffusers folder, or a Hugging Face hub id when online.",
    )
    model_type: Literal["auto", "image", "llm"] = Field(
        "auto",
        description="`auto`: the route follows base_model (a causal language model folder trains a chat "
        "LoRA, anything else an image LoRA); `llm` or `image` forces it (e.g. for a hub id).",
    )
    model_family: Literal["auto", "sd1", "sd2", "sdxl"] = Field(
        "auto",
        description="Model family. `auto` reads it from the checkpoint; set it only if detection is wrong "
        "(or for a hub id, which is not read before it loads).",
    )
    allow_pickle: bool = Field(
        False,
        description="Allow a pickle .ckpt base model (loaded tensors-only with weights_only=True). "
        "Pickle files can hide code: prefer .safetensors.",
    )
    vae: str | None = Field(
        None,
        description="A VAE to use instead of the base model's (kohya's vae): a .safetensors file as "
        "WebUI's models/VAE folder has them (e.g. vae-ft-mse-840000-ema-pruned, sdxl-vae-fp16-fix) or a "
        "diffusers VAE folder, made for the base model's family. It encodes the training images and "
        "decodes the samples; the LoRA's metadata names it (ss_vae_name).",
    )
    no_half_vae: bool = Field(
        False,
        description="Keep the SD 1.x/2.x VAE in float32 under mixed_precision fp16/bf16 (kohya's "
        "no_half_vae): it encodes the training images and decodes the samples in float32, for VAEs that "
        "give NaN or black images in half precision. An SDXL VAE is always float32 here.",
    )
    prediction_type: Literal["auto", "epsilon", "v_prediction"] = Field(
        "auto",
        description="What the UNet predicts. `auto`: epsilon for SD1, v_prediction for SD2 single files "
        "(the 768-v models); set `epsilon` for SD2 512-base checkpoints.",
    )
    load_in_4bit: bool = Field(
        False,
        description="QLoRA: load the frozen base in 4-bit NF4 (bitsandbytes; pip install "
        "'lora-scripts[qlora]'): about a quarter of the memory. Meant for NVIDIA GPUs; a CPU works, "
        "slowly.",
    )
