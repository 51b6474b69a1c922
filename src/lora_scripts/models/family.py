"""The one protocol every model family implements, so the trainer, savers and tools know no family.

A family is two things: a `Family` (class-level facts: its name, how to recognise a base model of it, how to
load one) and the `TrainableModel` it loads (what the trainer calls: which modules get LoRA and under which
file names, data -> loss, a pipeline for samples, metadata facts). SD 1.x/2.x live in `models/sd.py`; SDXL
and LLMs are each one new module registered in `models/registry.py`, plus the contract tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from PIL import Image

    from ..config import DataConfig, ModelConfig, NetworkConfig, TrainConfig
    from ..data import DatasetIndex, ImageItem
    from .detect import ModelSource
    from .render import RenderRequest


@dataclass(frozen=True)
class FamilyInfo:
    name: str  # short id used in configs and metadata facts: "sd1", "sd2", "sdxl", "llm"
    display_name: str  # for sentences: "SD 1.x"
    # Context width of the cross-attention (SD) / hidden size (LLM) that identifies the family's LoRA files.
    lora_width: int | None = None
    # Which adapter file format save/ writes for it: "kohya" (one .safetensors) or "peft" (a folder).
    adapter_format: str = "kohya"
    # What render() returns for training samples: "image" (PIL images) or "text" ((base, LoRA) reply pairs).
    sample_kind: str = "image"
    # How LoRA files name the UNet's modules: "diffusers" (lora_unet_down_blocks_...) or "sgm" (SDXL's
    # lora_unet_input_blocks_..., what every client maps for SDXL).
    unet_names: str = "diffusers"
    # The side its images are trained at when the config names none (SDXL: 1024), and a hint said when the
    # config trains its text encoder(s).
    default_resolution: int = 512
    text_encoder_hint: str | None = None
    # What one training item is called in messages, and what to change when even one does not fit in memory.
    item_noun: str = "image"
    # kohya's per-block learning rates (down/mid/up_lr_weight): how many UNet blocks its lists number a side
    # (down = up) and in the middle, SD 1.x/2.x (12, 1), SDXL (9, 3); None: no such blocks (LLMs). Presets
    # such as `sine` spread over this many blocks; the model's lr_block hook says a parameter's block.
    lr_blocks: tuple[int, int] | None = None
    memory_hint: str = (
        "Lower resolution, set mixed_precision: fp16 or bf16, gradient_checkpointing: true and "
        "cache_latents: memory, or close other programs using the GPU"
    )


@runtime_checkable
class Family(Protocol):
    info: FamilyInfo

    def matches_checkpoint(self, keys: list[str]) -> bool:
        """True when a single-file checkpoint with these tensor names belongs to this family."""

    def matches_folder(self, path: Path) -> bool:
        """True when a model folder (diffusers, transformers) belongs to this family."""

    def load(self, source: ModelSource, cfg: ModelConfig) -> TrainableModel:
        """Load the base model offline from `source`, or raise a ModelError sentence."""


@runtime_checkable
class TrainableModel(Protocol):
    info: FamilyInfo

    def adapter_modules(self) -> dict[str, nn.Module]:
        """Modules that can carry LoRA layers, by the component name the file formats use ("unet", "te")."""

    def trained_components(self, net: NetworkConfig) -> list[str]:
        """The components whose LoRA is trained with this network config; the first is the main one."""

    def lora_targets(self, component: str, net: NetworkConfig) -> dict[str, str]:
        """Module name -> "linear" | "conv1x1" | "conv3x3" for every module of `component` given a LoRA."""

    def frozen_modules(self) -> list[nn.Module]:
        """Every module of the base model (moved to the device and cast to the compute dtype)."""

    def replace_module(self, component: str, module: nn.Module) -> None:
        """Use `module` (e.g. wrapped by accelerate) for `component` from now on."""

    def enable_gradient_checkpointing(self, component: str) -> None: ...

    def prepare_inputs(
        self, index: DatasetIndex, data: DataConfig, train: TrainConfig, trained: list[str], cache_dir: Path
    ) -> None:
        """Precompute what can be (e.g. latents, text-encoder outputs) before the first step."""

    def loss(
        self,
        items: list[ImageItem],
        data: DataConfig,
        train: TrainConfig,
        rng: random.Random,
        generator: torch.Generator | None = None,
        part: list[int] | None = None,
    ) -> torch.Tensor:
        """The training loss of one micro-batch (a scalar, fp32). `rng` drives data augmentation;
        `generator` (when given) draws noise and timesteps, e.g. fixed for validation. `part` (data-parallel
        processes): the loss of those items only, with every random draw made for the whole batch first, so
        that N processes see exactly the noise, timesteps and augmentations one process would."""

    def render(self, requests: list[RenderRequest]) -> list[Image.Image]:
        """Images drawn with the model as it is now (its LoRA layers included), one per request, seeded;
        for `info.sample_kind` "text": (base reply, LoRA reply) per request's prompt.
        The caller sets eval mode, no_grad and precision."""

    def metadata_facts(self) -> dict[str, str]:
        """Family facts for the file's metadata (kohya ss_* base version, modelspec architecture...)."""


# Optional hooks. A family defines them only when it has something to say; the trainer asks with getattr and
# falls back to the default (Protocol members would make every family define them):
#   loss_weight(items) -> int   how many terms loss() averages (an LLM's trained tokens); default len(items).
#                               A batch split among processes or micro-batches is weighted by it.
#   place(device) -> None       the frozen modules stay where they were loaded and the family brings each to
#                               `device` when needed (caching one model at a time); default: all go at once.
#   lr_block(param_name)        ("down" | "mid" | "up", index) of a main-component LoRA parameter for
#                               per-block learning rates, numbered as info.lr_blocks counts; default: none.
