"""Write a trained LoRA as one kohya-format .safetensors file with its metadata."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..inject.lora import LoraWeights
from .atomic import atomic_save_safetensors
from .kohya import to_kohya
from .metadata import RunFacts, add_hashes, build_metadata


def save_lora(parts: dict[str, dict[str, LoraWeights]], path: Path, cfg: Config, facts: RunFacts) -> Path:
    tensors = to_kohya(parts, cfg.output.save_precision)
    metadata = add_hashes(tensors, build_metadata(cfg, facts))
    return atomic_save_safetensors(tensors, path, metadata)
