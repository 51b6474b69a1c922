"""`train` section: optimisation, precision and memory settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section


class TrainConfig(Section):
    batch_size: int | Literal["auto"] = Field(
        1,
        description="Images per step on the GPU, or `auto`: the largest batch (up to 16) that fits. "
        "If memory runs out during training anyway, the batch is split in smaller pieces automatically.",
    )
    epochs: int = Field(10, ge=1, description="Passes over the dataset (repeats included).")
    max_train_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimiser steps (overrides `epochs` when set)."
    )
    learning_rate: float = Field(1e-4, gt=0, le=1.0, description="Learning rate of the UNet LoRA.")
    text_encoder_lr: float | None = Field(
        None, gt=0, le=1.0, description="Learning rate of the text-encoder LoRA. Empty means `learning_rate`."
    )
    lr_scheduler: Literal[
        "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"
    ] = Field("constant", description="Learning-rate schedule (diffusers' get_scheduler names).")
    lr_warmup_steps: int = Field(0, ge=0, description="Steps of linear warm-up at the start.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Sum gradients over this many batches before a step (bigger batch, same memory)."
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no",
        description="Compute precision on GPU. fp16 for RTX 20/30/40 cards, bf16 for RTX 30/40 and newer. "
        "LoRA weights always stay in fp32.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: much less memory, ~20% slower."
    )
    cache_latents: Literal["no", "memory", "disk"] = Field(
        "no",
        description="Encode every image with the VAE once before training (`memory` or `disk`) instead of "
        "every step. Turns off flip_aug's randomness (flipped copies are not cached).",
    )
    cache_text_encoder_outputs: bool = Field(
        True,
        description="Encode each caption once when the text encoder is frozen and captions are not "
        "shuffled or dropped (the log says why it is off otherwise).",
    )
    seed: int = Field(42, description="Random seed for noise, timesteps and data order.")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="Optimiser.")
    weight_decay: float = Field(1e-2, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(
        1.0, ge=0.0, description="Clip gradients to this norm (0 turns clipping off)."
    )
    noise_offset: float = Field(0.0, ge=0.0, le=1.0, description="Noise offset for darker/brighter images.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train.")
    num_threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads for torch. Empty: OMP_NUM_THREADS if set, else the cores this process may "
        "run on. On a machine shared with other jobs set 1: idle-spinning threads that wait for a busy core "
        "made a step ~10x slower.",
    )
    resume: str | None = Field(
        None,
        description="Continue an interrupted run: `auto` takes the newest training state in output_dir "
        "(starting fresh if there is none), or give a state folder such as output/x/state/step-000100.",
    )

    validation_steps: int = Field(
        0,
        ge=0,
        description="Score the held-out images every N steps (0: at the end of every epoch). The score uses "
        "the same noise and timesteps every time, so the curve is comparable, and leaves training "
        "unchanged.",
    )
    validation_patience: int = Field(
        3,
        ge=1,
        description="Warn about overfitting when the held-out loss has risen for this many scores in a row "
        "while the training loss kept falling.",
    )
    early_stopping: bool = Field(
        False,
        description="Stop at that warning and keep the best-scoring LoRA as the final file (default: warn "
        "and go on).",
    )

    @field_validator("batch_size")
    @classmethod
    def _batch_range(cls, v):
        if isinstance(v, int) and not 1 <= v <= 1024:
            raise ValueError("between 1 and 1024, or auto")
        return v

    @field_validator("cache_latents", mode="before")
    @classmethod
    def _bool_cache(cls, v):
        if v is True:
            return "memory"
        if v is False or v is None:
            return "no"
        return v

    @property
    def te_lr(self) -> float:
        return self.text_encoder_lr if self.text_encoder_lr is not None else self.learning_rate
