"""One image from a diffusers pipeline and plain settings: what training samples and `generate` share.

The sampler names are WebUI's (the table is in config/sample.py, checked when a config loads); each render
gets a fresh scheduler built from the model's own noise schedule, and the pipeline's is put back after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image

from ..config.sample import SAMPLERS, sampler_name


@dataclass(frozen=True)
class RenderRequest:
    """Everything that makes one image, without LoRA tags (those are generate's business)."""

    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = "Euler a"
    system: str = ""  # chat samples (sample_kind "text"): the system message
    clip_skip: int = 1  # WebUI/kohya numbering: 2 reads the text encoder's penultimate layer


def make_scheduler(name: str, base_config: dict):
    """A fresh scheduler for sampler `name` with the model's betas and prediction type."""
    cls, extra = SAMPLERS[sampler_name(name)]
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    return cls.from_config({**config, "steps_offset": 1, **extra})


def render_one(pipe, request: RenderRequest, on_step: Callable[[], None] | None = None) -> Image.Image:
    """`request` rendered with `pipe` (seeded: same request, same image); the pipeline's scheduler is kept."""
    original = pipe.scheduler
    pipe.scheduler = make_scheduler(request.sampler, original.config)

    def step_done(_pipe, _step, _t, kwargs):
        if on_step is not None:
            on_step()
        return kwargs

    extra = {"clip_skip": request.clip_skip - 1} if request.clip_skip > 1 else {}  # diffusers counts from 0
    try:
        with text_model_alias(pipe.text_encoder if extra else None), vae_without_autocast(pipe.vae):
            out = pipe(
                **extra,
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                num_inference_steps=request.steps,
                guidance_scale=request.cfg_scale,
                width=request.width,
                height=request.height,
                generator=torch.Generator("cpu").manual_seed(request.seed),
                callback_on_step_end=step_done,
            )
    finally:
        pipe.scheduler = original
    return out.images[0]


@contextmanager
def vae_without_autocast(vae) -> Iterator[None]:
    """The pipeline's VAE decode with autocast off, for the call only: samples are drawn under the trainer's
    mixed precision, whose fp16 convs overflow SDXL's VAE to NaN (black samples) even with float32 weights.
    (diffusers upcasts a float16 VAE itself, but has no switch for autocast around the decode.)"""
    decode = vae.decode

    def decode_in_own_dtype(latents, *args, **kwargs):
        with torch.autocast(latents.device.type, enabled=False):
            return decode(latents.to(vae.dtype), *args, **kwargs)

    vae.decode = decode_in_own_dtype  # an instance attribute over the method; removed below
    try:
        yield
    finally:
        del vae.decode


@contextmanager
def text_model_alias(encoder) -> Iterator[None]:
    """diffusers' SD pipeline reads clip_skip through text_encoder.text_model.final_layer_norm, which
    transformers 5's CLIPTextModel holds itself: an alias for the call only (not a registered submodule, so no
    module cycle). Kept for good, it made diffusers' load_lora_weights skip every text-encoder key: it
    strips 'text_model.' only from encoders without the attribute (an IndexError on our pipeline)."""
    if encoder is None or hasattr(encoder, "text_model"):
        yield
        return
    object.__setattr__(encoder, "text_model", encoder)
    try:
        yield
    finally:
        object.__delattr__(encoder, "text_model")
