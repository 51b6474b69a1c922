"""The registry: which families exist, the one base-model detector, and `load_model`.

Adding a family = one module implementing `models/family.py`'s protocol + one line in FAMILIES; the trainer,
savers and tools ask the registry and never branch on a family's name.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from ..config import ModelConfig
from ..errors import ModelError
from .detect import PICKLE_SUFFIXES, ModelSource, locate, read_pickle_keys
from .family import Family, FamilyInfo, TrainableModel
from .llm import LLM
from .sd import SD1, SD2
from .sdxl import SDXL

# image families (the contract suite's), SDXL first: an SDXL folder also has SD1's text_encoder/
FAMILIES: dict[str, Family] = {f.info.name: f for f in (SDXL, SD1, SD2)}
TEXT_FAMILIES: dict[str, Family] = {LLM.info.name: LLM}  # the LLM route (config/route.py)
LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")


def family_info(name: str | None) -> FamilyInfo | None:
    if name is None:
        return None
    known = {**FAMILIES, **TEXT_FAMILIES}
    return known[name].info if name in known else None


def display_name(name: str | None) -> str:
    info = family_info(name)
    return info.display_name if info else (name or "unknown")


def family_for_width(width: int) -> str | None:
    """The family whose LoRA files have this cross-attention context width (768 SD1, 1024 SD2, 2048 SDXL)."""
    infos = [f.info for f in FAMILIES.values()]
    return next((i.name for i in infos if i.lora_width == width), None)


def detect_family(source: ModelSource) -> Family:
    """The family of a base model (single file, folder or hub id), or one sentence saying why none fits."""
    if source.kind == "transformers":
        return LLM
    if source.kind == "hub":
        return SD1  # offline we cannot look inside a hub id; the diffusers loader refines SD1/SD2 on load
    if source.kind == "diffusers":
        return _detect_folder(Path(source.location))
    return _detect_checkpoint(source.location, checkpoint_keys(source.location))


def checkpoint_keys(path: str) -> list[str]:
    """Tensor names of a single-file checkpoint, read from the header only (no weights loaded)."""
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return read_pickle_keys(path)
    try:
        with safe_open(path, framework="pt") as handle:
            return list(handle.keys())
    except Exception as exc:  # safetensors raises several types for truncated/foreign files
        raise ModelError(
            f"Base model '{path}' is not a readable .safetensors file (it may be truncated or not a model)",
            "Download it again, or point base_model at another checkpoint",
        ) from exc


def _detect_checkpoint(path: str, keys: list[str]) -> Family:
    if any(k.startswith(LORA_PREFIXES) for k in keys):
        raise ModelError(
            f"'{path}' is a LoRA file, not a base model",
            "Use the checkpoint it was made for as the base model "
            "(base_model in a config, --model on the command line)",
        )
    found = [f for f in FAMILIES.values() if f.matches_checkpoint(keys)]
    if found:
        return found[0]
    if any(k.startswith("model.diffusion_model.") for k in keys):
        raise ModelError(
            f"'{path}' has no text encoder weights", "Use a full SD checkpoint, not a UNet-only file"
        )
    raise ModelError(
        f"'{path}' is not a Stable Diffusion checkpoint (no UNet weights inside)",
        "Point base_model at an SD 1.x/2.x or SDXL .safetensors checkpoint",
    )


def _detect_folder(path: Path) -> Family:
    found = [f for f in FAMILIES.values() if f.matches_folder(path)]
    if found:
        return found[0]
    raise ModelError(
        f"Folder '{path}' is not a Stable Diffusion 1.x/2.x diffusers model "
        "(its text_encoder/config.json is missing or of an unknown width)",
        "Point base_model at a complete SD 1.x/2.x diffusers folder or a .safetensors checkpoint",
    )


def load_model(cfg: ModelConfig) -> TrainableModel:
    """Locate, detect (or take `model_family`), log and load the base model for training."""
    source = locate(cfg.base_model, cfg.allow_pickle)
    return model_family(source, cfg).load(source, cfg)


def model_family(source: ModelSource, cfg: ModelConfig) -> Family:
    """The family the config asks for (model_type: llm, model_family), else the detected one."""
    if cfg.model_type == "llm":
        return LLM
    return FAMILIES[cfg.model_family] if cfg.model_family != "auto" else detect_family(source)
