"""Where a labelling model comes from: a folder on this machine, or a hub id (downloaded once, cached)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

DEFAULT_MODELS = {
    "classify": "google/vit-base-patch16-224",
    "caption": "Salesforce/blip-image-captioning-base",
    "tags": "SmilingWolf/wd-v1-4-convnext-tagger-v2",
}
KINDS = {
    "classify": "image-classification",
    "caption": "image-captioning (image-to-text)",
    "tags": "WD14-style ONNX tagger",
}
EXAMPLES = {
    "classify": "a folder with config.json from a ViT-style classifier",
    "caption": "a folder with config.json from a BLIP or GIT captioner",
    "tags": "a folder with model.onnx and selected_tags.csv",
}


@dataclass(frozen=True)
class ModelRef:
    name: str  # what the user typed (or the default)
    location: str
    local: bool
    backend: str


def resolve_model(name: str | None, backend: str) -> ModelRef:
    """Decide whether ``--model`` is a local folder or a hub id; anything else is a sentence."""
    name = name or DEFAULT_MODELS[backend]
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelRef(name, str(path), True, backend)
    if path.exists():
        raise ModelError(
            f"--model '{name}' is a file, but the {backend} backend needs a model folder",
            f"Pass {EXAMPLES[backend]}",
        )
    if _HUB_ID.match(name) and len(path.parts) == 2:
        return ModelRef(name, name, False, backend)
    raise ModelError(
        f"Model '{name}' is neither a folder on this machine nor a hub id like '{DEFAULT_MODELS[backend]}'",
        f"Check the spelling, or pass {EXAMPLES[backend]}",
    )


def unavailable(ref: ModelRef, exc: BaseException) -> ModelError:
    """The error for a model that is not on this machine (offline) or cannot be read."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if ref.local:
        return ModelError(
            f"Folder '{ref.location}' is not a readable {KINDS[ref.backend]} model ({reason})",
            f"Pass {EXAMPLES[ref.backend]}",
        )
    local = f"models/{ref.name.split('/')[-1]}"
    return ModelError(
        f"The {KINDS[ref.backend]} model '{ref.name}' is not on this machine and could not be downloaded",
        f"Run once while online, or download it with `hf download {ref.name} --local-dir {local}` "
        f"and pass --model {local}",
    )


def wrong_kind(ref: ModelRef, found: str) -> ModelError:
    other = {
        "classify": "--backend caption or --backend tags",
        "caption": "--backend classify",
        "tags": "--backend classify or caption",
    }
    return ModelError(
        f"Model '{ref.name}' is a {found}, not an {KINDS[ref.backend]} model",
        f"Pass {EXAMPLES[ref.backend]}, or use {other[ref.backend]} for this model",
    )
