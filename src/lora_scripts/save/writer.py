"""Write a trained LoRA in its family's format: one kohya .safetensors file with metadata (image families),
or a PEFT adapter folder (LLMs)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..inject.lora import LoraWeights
from ..models.registry import family_info
from .atomic import atomic_save_safetensors
from .kohya import to_kohya
from .metadata import RunFacts, add_hashes, build_metadata, comment_facts
from .peft_adapter import save_peft_adapter

SUFFIX = {"kohya": ".safetensors", "peft": ""}  # what the family's adapter_format adds to a run's names


def adapter_path(folder: Path, stem: str, adapter_format: str) -> Path:
    return folder / f"{stem}{SUFFIX[adapter_format]}"


def save_adapter(
    parts: dict[str, dict[str, LoraWeights]], path: Path, cfg: Config, facts: RunFacts, adapter_format: str
) -> Path:
    if adapter_format == "peft":
        if len(parts) != 1:
            raise ValueError(f"a PEFT adapter folder holds one model's layers, got {sorted(parts)}")
        meta = {**facts.lineage, **comment_facts(cfg)}  # peft ignores them; `lora inspect` shows them
        return save_peft_adapter(next(iter(parts.values())), path, cfg, meta)
    return save_lora(parts, path, cfg, facts)


def save_lora(parts: dict[str, dict[str, LoraWeights]], path: Path, cfg: Config, facts: RunFacts) -> Path:
    tensors = to_kohya(parts, cfg.output.save_precision, family_info(facts.family).unet_names)
    metadata = add_hashes(tensors, build_metadata(cfg, facts))
    return atomic_save_safetensors(tensors, path, metadata)
