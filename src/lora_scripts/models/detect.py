"""Decide what a `base_model` value points at and read a single-file checkpoint (families: registry.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config.route import causal_lm_architecture
from ..errors import ModelError

UNET_PREFIX = "model.diffusion_model."
SD1_TE_PREFIX = "cond_stage_model.transformer."
SD2_TE_PREFIX = "cond_stage_model.model."
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "single_file" | "diffusers" | "transformers" (a causal LM folder) | "hub"
    location: str


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
VAE_FIX = "Fix the path in vae, or remove vae to use the base's"


def pickle_refused(path: str, what: str, allow_pickle: bool | None) -> ModelError:
    """The sentence for a refused pickle base model or VAE. Only a training config has `allow_pickle` (False
    there); generate, batch and the lora tools (None) have no such option and load .safetensors only."""
    if allow_pickle is None:
        hint = (
            "Use its .safetensors version (model sites offer one, or convert the file once); this command "
            "loads no pickle files"
        )
    else:
        hint = "Use its .safetensors version, or set allow_pickle: true in the config if you trust the file"
    noun = "checkpoint" if what == "Base model" else "file"
    sentence = f"{what} '{path}' is a pickle {noun}, which can run hidden code and is not loaded"
    return ModelError(sentence, hint)


def refuse_pickle(path: str | None, what: str) -> None:
    """For the commands with no allow_pickle (generate, batch): a pickle base model or VAE is one sentence
    before anything loads, with advice that fits them (a missing file gets its own sentence elsewhere)."""
    if path and Path(path).suffix.lower() in PICKLE_SUFFIXES and Path(path).is_file():
        raise pickle_refused(path, what, None)


def check_vae(path: str, allow_pickle: bool | None, fix: str = VAE_FIX) -> None:
    """A `vae` (`--vae`) that cannot be used, said before torch is imported: missing, or a pickle file where
    ``allow_pickle`` does not allow it (None: the command has no such option). ``fix``: the advice for a
    missing one, in the words of the option the user gave."""
    where = Path(path)
    if not where.exists():
        raise ModelError(f"VAE '{path}' does not exist", fix)
    if where.is_file() and where.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise pickle_refused(path, "VAE", allow_pickle)


def locate(base_model: str, allow_pickle: bool | None = None) -> ModelSource:
    """Classify the config's `base_model` value, or say clearly why it cannot be used. ``allow_pickle`` is
    the training config's key; None where the command has no such option (the advice differs)."""
    path = Path(base_model).expanduser()
    if path.is_dir():
        if (path / "unet" / "config.json").is_file():
            return ModelSource("diffusers", str(path))
        if causal_lm_architecture(path):
            return ModelSource("transformers", str(path))
        raise ModelError(
            f"Folder '{path}' is not a diffusers model (no unet/config.json inside)",
            "Point base_model at a .safetensors checkpoint file or at a diffusers model folder",
        )
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise pickle_refused(str(path), "Base model", allow_pickle)
        return ModelSource("single_file", str(path))
    if HUB_ID.match(base_model) and not base_model.startswith((".", "/")) and len(path.parts) == 2:
        return ModelSource("hub", base_model)
    raise ModelError(
        f"Base model '{base_model}' does not exist",
        "Check the path in base_model; it must be a .safetensors file, a diffusers folder or a hub id",
    )


def read_checkpoint(path: str) -> dict:
    """Load a single-file checkpoint's tensors (.safetensors, or a tensors-only pickle), with a sentence
    when it cannot be read. Which family it is was decided before, by models/registry.detect_family."""
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return _read_pickle(path)
    from safetensors.torch import load_file  # here: locate() is used before torch is imported

    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises several types for truncated/foreign files
        raise ModelError(
            f"Base model '{path}' is not a readable .safetensors file (it may be truncated or not a model)",
            "Download it again, or point base_model at another checkpoint",
        ) from exc


def read_pickle_keys(path: str) -> list[str]:
    return list(_read_pickle(path))


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
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
