"""`train` section: optimisation, precision and memory settings."""

from __future__ import annotations

import importlib.util
import shlex
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section

# optimiser -> (module, class, pip package) for those outside torch (train/optim.py builds them)
OPTIMIZER_LIBRARIES = {
    "adamw8bit": ("bitsandbytes.optim", "AdamW8bit", "bitsandbytes"),
    "adafactor": ("transformers.optimization", "Adafactor", "transformers"),
    "lion": ("lion_pytorch", "Lion", "lion-pytorch"),
    "prodigy": ("prodigyopt", "Prodigy", "prodigyopt"),
}
# kohya's block-weight presets (sd-scripts networks/lora.py, get_block_lr_weight): kept as written here and
# spread over the family's block count once the model is known (models/lr_blocks.side_weights)
BLOCK_PRESETS = ("sine", "cosine", "linear", "reverse_linear", "zeros")


def split_preset(spec: str) -> tuple[str, float] | None:
    """("sine", 0.5) for "sine+0.5", None when `spec` names no preset; ValueError for a bad added number."""
    name, sep, plus = spec.strip().partition("+")
    name = name.strip()
    if name not in BLOCK_PRESETS:
        return None
    try:
        added = float(plus) if plus.strip() else 0.0  # "sine+" is sine, as kohya reads it
    except ValueError:
        raise ValueError(f"a preset with a number added, such as {name}+0.5") from None
    if not 0 <= added <= 99:
        raise ValueError(f"a preset with a number from 0 to 99 added, such as {name}+0.5")
    return name, added


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
    ] = Field(
        "constant",
        description="Learning-rate schedule (diffusers' get_scheduler): `constant`, `constant_with_warmup`, "
        "`linear` or `polynomial` decay to 0, `cosine`, or `cosine_with_restarts` (hard restarts).",
    )
    lr_warmup_steps: int = Field(0, ge=0, description="Steps of linear warm-up at the start.")
    lr_scheduler_num_cycles: int = Field(
        1, ge=1, le=1000, description="Number of cosine cycles (restarts) for `cosine_with_restarts`."
    )
    lr_scheduler_power: float = Field(
        1.0, gt=0.0, le=100.0, description="Power of the `polynomial` decay (1 is linear)."
    )
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
    optimizer: Literal["adamw", "adamw8bit", "adafactor", "lion", "prodigy", "sgd"] = Field(
        "adamw",
        description="Optimiser (kohya: optimizer_type; any letter case): `adamw` (torch), `adamw8bit` "
        "(bitsandbytes, saves memory), `adafactor` (transformers, at the fixed learning_rate), `lion` "
        "(lion-pytorch; use a 3-10x smaller learning_rate), `prodigy` (prodigyopt, finds the step size "
        "itself: set learning_rate 1), `sgd` (momentum 0.9).",
    )
    optimizer_args: list[str] = Field(
        default_factory=list,
        description="Extra settings for the optimiser, as kohya writes them: a list of `key=value` with "
        'Python values (`["betas=0.9,0.99", "d_coef=2"]`), one text of them separated by spaces (the '
        "kohya_ss GUI's), or a `key: value` mapping. The optimiser refuses what it does not know.",
    )
    weight_decay: float = Field(1e-2, ge=0.0, description="Weight decay (AdamW, Lion, Prodigy, Adafactor).")
    max_grad_norm: float = Field(
        1.0, ge=0.0, description="Clip gradients to this norm (0 turns clipping off)."
    )
    noise_offset: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Add this much per-channel constant noise (one value per image and latent channel), so "
        "the LoRA learns very dark or bright images. 0.05-0.1 is usual; 0: off.",
    )
    noise_offset_random_strength: bool = Field(
        False,
        description="Draw the noise offset's strength uniformly between 0 and noise_offset for every batch.",
    )
    adaptive_noise_scale: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="With noise_offset: add this times the absolute mean of each latent channel to the "
        "offset (kohya's adaptive noise scale; about noise_offset / 10 is usual).",
    )
    multires_noise_iterations: int = Field(
        0,
        ge=0,
        le=64,
        description="Multi-resolution (pyramid) noise: add noise drawn at this many coarser scales "
        "(6-10 is usual); 0: off.",
    )
    multires_noise_discount: float = Field(
        0.3,
        gt=0.0,
        le=1.0,
        description="Weight of each coarser scale of multires noise is this to the power of the scale.",
    )
    ip_noise_gamma: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Input perturbation: the noisy input gets this much extra noise that the target does "
        "not contain (Ning et al.; 0.1 is usual); 0: off.",
    )
    ip_noise_gamma_random_strength: bool = Field(
        False,
        description="Draw the input perturbation's strength uniformly between 0 and ip_noise_gamma for "
        "every batch.",
    )
    min_snr_gamma: float | None = Field(
        None,
        gt=0.0,
        le=100.0,
        description="Min-SNR loss weighting (Hang et al.): each image's loss is weighted by "
        "min(SNR, gamma) / SNR of its timestep (min(SNR, gamma) / (SNR + 1) for v-prediction). 5 is usual; "
        "empty or 0: off.",
    )
    debiased_estimation_loss: bool = Field(
        False,
        description="kohya's debiased estimation: weight each image's loss by 1 / sqrt(SNR) of its timestep "
        "(1 / (SNR + 1) for v-prediction), SNR capped at 1000.",
    )
    scale_v_pred_loss_like_noise_pred: bool = Field(
        False,
        description="For v-prediction: weight the loss by SNR / (SNR + 1), so it has the shape of an "
        "epsilon-prediction loss (kohya).",
    )
    v_pred_like_loss: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        description="Add this times a v-prediction-like loss to an epsilon-prediction loss (kohya; the loss "
        "is multiplied by 1 + value * (SNR + 1) / SNR). 0: off.",
    )
    loss_type: Literal["l2", "l1", "huber", "smooth_l1"] = Field(
        "l2",
        description="`l2` (mean squared error), `l1`, or kohya's pseudo-Huber `huber` / `smooth_l1` with "
        "threshold huber_c: less pull from outliers.",
    )
    huber_c: float = Field(
        0.1, gt=0.0, le=1.0, description="Threshold of the huber and smooth_l1 losses (kohya's default 0.1)."
    )
    huber_schedule: Literal["constant", "exponential", "snr"] = Field(
        "snr",
        description="How the huber threshold changes with the timestep (kohya): `constant` huber_c, "
        "`exponential` from 1 down to huber_c, or `snr`: near 1 at low noise, near huber_c at high noise.",
    )
    clip_skip: int | None = Field(
        None,
        ge=1,
        le=12,
        description="Read the text encoder's output this many layers from the end, as WebUI's and kohya's "
        "clip_skip (2 for many anime SD 1.5 models); training samples use it too. Empty or 1: the last "
        "layer. SD 1.x/2.x.",
    )
    max_token_length: Literal[150, 225] | None = Field(
        None,
        description="Read captions up to this many tokens (kohya's max_token_length) in chunks of 75, as "
        "WebUI reads long prompts. Empty (or 75): 75, the rest cut off. SD 1.x/2.x; samples use the first "
        "75.",
    )
    min_timestep: int | None = Field(
        None,
        ge=0,
        le=999,
        description="Train only on timesteps from this one up (kohya; 0 = the least noise). Empty: 0.",
    )
    max_timestep: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Train only on timesteps below this one (kohya; 1000 = pure noise). Empty: all.",
    )
    zero_terminal_snr: bool = Field(
        False,
        description="Rescale the noise schedule so the last timestep is pure noise (Lin et al.); use with "
        "v-prediction models (SD 2.x-v).",
    )
    loraplus_lr_ratio: float | None = Field(
        None,
        gt=0.0,
        le=1000.0,
        description="LoRA+ (Hayou et al.): the LoRA up (B) matrices learn this many times faster than the "
        "down (A) matrices. 16 is the paper's value; empty or 0: off.",
    )
    down_lr_weight: list[float] | str | None = Field(
        None,
        description="kohya's per-block learning rates: 12 multipliers for the UNet's down (input) blocks "
        "IN00-IN11 of SD 1.x/2.x, 9 for SDXL's input_blocks 0-8 (IN00, the input conv, has no LoRA), as a "
        "list, as `1,1,0.5,...`, or as kohya's presets `sine`, `cosine`, `linear`, `reverse_linear`, `zeros` "
        "(spread over the model's 12 or 9 blocks), optionally `+0.5` added to each. 0 stops a block "
        "training. Empty: 1 for all.",
    )
    mid_lr_weight: float | list[float] | None = Field(
        None,
        description="Learning-rate multiplier for the UNet's mid block; for SDXL one number or kohya's 3 "
        "(middle_block 0-2: resnet, attention, resnet).",
    )
    up_lr_weight: list[float] | str | None = Field(
        None,
        description="12 learning-rate multipliers for the UNet's up (output) blocks OUT00-OUT11 (SDXL: 9, "
        "output_blocks 0-8), written as down_lr_weight.",
    )
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

    @field_validator("optimizer", mode="before")
    @classmethod
    def _optimizer_case(cls, v):
        return v.lower() if isinstance(v, str) else v  # kohya writes AdamW8bit, Lion, Prodigy

    @field_validator("optimizer")
    @classmethod
    def _optimizer_installed(cls, v):
        if v in OPTIMIZER_LIBRARIES:  # said before the model loads; find_spec imports nothing
            module, _, package = OPTIMIZER_LIBRARIES[v]
            if importlib.util.find_spec(module.split(".")[0]) is None:
                raise ValueError(
                    f"one whose library is installed: {v} needs {package} (pip install {package})"
                )
        return v

    @field_validator("optimizer_args", mode="before")
    @classmethod
    def _args_as_list(cls, v):
        if v is None:
            return []
        if isinstance(v, dict):  # YAML's own form: {d_coef: 2, betas: [0.9, 0.99]}
            return [f"{k}={val!r}" for k, val in v.items()]
        return shlex.split(v) if isinstance(v, str) else v  # the kohya_ss GUI's "d0=1e-5 d_coef=1.0"

    @field_validator("optimizer_args")
    @classmethod
    def _args_form(cls, v):
        for item in v:
            key, sep, _ = item.partition("=")
            if not sep or not key.strip().isidentifier():
                raise ValueError("a list of key=value entries such as betas=0.9,0.99")
        return v

    @field_validator("min_snr_gamma", "loraplus_lr_ratio", mode="before")
    @classmethod
    def _zero_is_off(cls, v):
        return None if v in (0, "0", "0.0") else v  # kohya's and its GUI's "off"

    @field_validator("max_token_length", mode="before")
    @classmethod
    def _kohya_75(cls, v):
        return None if v in (75, "75") else v  # kohya's GUI writes its default, 75

    @field_validator("down_lr_weight", "up_lr_weight", mode="before")
    @classmethod
    def _block_list(cls, v):
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
            v = v[0]  # the web UI's list box holding a preset or kohya's "1,1,0.5,..."
        if not isinstance(v, str):
            return v
        preset = split_preset(v)
        if preset is not None:  # kohya's presets, "sine" or "cosine+0.5": expanded once the model is known
            name, added = preset
            return f"{name}+{added!r}" if added else name  # the number exactly (it is trained and recorded)
        try:  # kohya's network_args form: "1,1,1,0.5,..."
            return [float(x) for x in v.split(",") if x.strip()]
        except ValueError:
            presets = ", ".join(BLOCK_PRESETS)
            raise ValueError(f"12 numbers such as 1,1,1,1,1,1,1,1,1,1,1,1, or a preset ({presets})") from None

    @field_validator("down_lr_weight", "up_lr_weight")
    @classmethod
    def _twelve(cls, v):
        if not isinstance(v, list):
            return v  # None, or a preset checked above
        if len(v) not in (9, 12):
            raise ValueError(f"a list of 12 multipliers (SDXL: 9), one per block (it has {len(v)})")
        if any(not 0 <= x <= 100 for x in v):
            raise ValueError("a list of 12 multipliers (SDXL: 9) between 0 and 100")
        return v

    @field_validator("mid_lr_weight")
    @classmethod
    def _mid(cls, v):
        values = v if isinstance(v, list) else [] if v is None else [v]
        if isinstance(v, list) and len(v) != 3:
            raise ValueError(f"one multiplier, or SDXL's 3 (it has {len(v)})")
        if any(not 0 <= x <= 100 for x in values):
            raise ValueError("multipliers between 0 and 100")
        return v

    @model_validator(mode="after")
    def _timestep_range(self):
        low, high = self.min_timestep or 0, self.max_timestep or 1000
        if low >= high:
            raise ValueError(f"min_timestep ({low}) must be below max_timestep ({high})")
        return self

    @model_validator(mode="after")
    def _needs_noise_offset(self):
        if self.adaptive_noise_scale and not self.noise_offset:
            raise ValueError("adaptive_noise_scale scales noise_offset, so it needs noise_offset set above 0")
        return self

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
