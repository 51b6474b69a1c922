"""Decide what a `base_model` value points at, and which SD family a single-file checkpoint is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from ..errors import ModelError

UNET_PREFIX = "model.diffusion_model."
SD1_TE_PREFIX = "cond_stage_model.transformer."
SD2_TE_PREFIX = "cond_stage_model.model."
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}
# Cross-attention context / text-encoder width -> family (CLIP ViT-L 768, OpenCLIP ViT-H 1024, SDXL 2048).
WIDTH_FAMILY = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "single_file" | "diffusers" | "hub"
    location: str


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


def locate(base_model: str, allow_pickle: bool = False) -> ModelSource:
    """Classify the config's `base_model` value, or say clearly why it cannot be used."""
    path = Path(base_model).expanduser()
    if path.is_dir():
        if (path / "unet" / "config.json").is_file():
            return ModelSource("diffusers", str(path))
        raise ModelError(
            f"Folder '{path}' is not a diffusers model (no unet/config.json inside)",
            "Point base_model at a .safetensors checkpoint file or at a diffusers model folder",
        )
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise ModelError(
                f"Base model '{path}' is a pickle checkpoint, which can run hidden code and is not loaded",
                "Use the .safetensors version of the model, or set allow_pickle: true if you trust the file",
            )
        return ModelSource("single_file", str(path))
    if HUB_ID.match(base_model) and not base_model.startswith((".", "/")) and len(path.parts) == 2:
        return ModelSource("hub", base_model)
    raise ModelError(
        f"Base model '{base_model}' does not exist",
        "Check the path in base_model; it must be a .safetensors file, a diffusers folder or a hub id",
    )


def read_checkpoint(path: str) -> dict:
    """Load a single-file .safetensors checkpoint, with a sentence when it is not one."""
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return _read_pickle(path)
    try:
        with safe_open(path, framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as exc:  # safetensors raises several types for truncated/foreign files
        raise ModelError(
            f"Base model '{path}' is not a readable .safetensors file (it may be truncated or not a model)",
            "Download it again, or point base_model at another checkpoint",
        ) from exc
    family_from_keys(keys, path)
    return load_file(path)


def _read_pickle(path: str) -> dict:
    """An old .ckpt (only with allow_pickle: true): tensors only, never arbitrary objects (weights_only)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"Base model '{path}' could not be read as a tensors-only checkpoint ({type(exc).__name__})",
            "It may be damaged or contain code; use the .safetensors version of the model",
        ) from exc
    sd = data.get("state_dict", data) if isinstance(data, dict) else None
    if not isinstance(sd, dict):
        raise ModelError(
            f"Base model '{path}' holds no weights dictionary", "Use a Stable Diffusion checkpoint"
        )
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    family_from_keys(list(sd), path)
    return sd


def family_from_keys(keys: list[str], path: str = "checkpoint") -> str:
    """sd1 (CLIP ViT-L text encoder) or sd2 (OpenCLIP ViT-H); anything else is refused with a reason."""
    if any(k.startswith("conditioner.embedders.") for k in keys):
        raise ModelError(
            f"'{path}' is an SDXL checkpoint; SDXL training is not supported yet", "Use an SD 1.x/2.x model"
        )
    if any(k.startswith(("lora_unet_", "lora_te")) for k in keys):
        raise ModelError(
            f"'{path}' is a LoRA file, not a base model",
            "Use the checkpoint it was made for as the base model "
            "(base_model in a config, --model on the command line)",
        )
    if not any(k.startswith(UNET_PREFIX) for k in keys):
        raise ModelError(
            f"'{path}' is not a Stable Diffusion checkpoint (no UNet weights inside)",
            "Point base_model at an SD 1.x/2.x .safetensors checkpoint",
        )
    if any(k.startswith(SD2_TE_PREFIX) for k in keys):
        return "sd2"
    if any(k.startswith(SD1_TE_PREFIX) for k in keys):
        return "sd1"
    raise ModelError(
        f"'{path}' has no text encoder weights", "Use a full SD checkpoint, not a UNet-only file"
    )
