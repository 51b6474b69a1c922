"""Where a labelling model comes from: a folder on this machine (also one downloaded from ModelScope), a hub
id (downloaded once through huggingface_hub, which honours HF_ENDPOINT mirrors, then cached), or a ModelScope
id `modelscope:org/name` (downloaded with the `modelscope` package when it is installed)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
MODELSCOPE = "modelscope:"
MIRROR = "https://hf-mirror.com"  # the mirror people in China use; named in the hints as an example

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
    local: bool  # a folder on this machine
    backend: str
    cache_only: bool = False  # a hub id to load from the local cache only (offline, or the hub unreachable)


def resolve_model(name: str | None, backend: str) -> ModelRef:
    """Decide whether ``--model`` is a folder, a hub id or a ModelScope id; anything else is a sentence."""
    name = name or DEFAULT_MODELS[backend]
    if name.startswith(MODELSCOPE):
        return _from_modelscope(name, backend)
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


def local_folder(model_id: str) -> str:
    """Where the hints suggest putting a downloaded model: ./models/<name>."""
    return f"./models/{model_id.split('/')[-1]}"


def bring_in(model_id: str) -> str:
    """The part of a hint that says how to bring a hub model's folder onto a machine without the hub."""
    folder = local_folder(model_id)
    return (
        f"download the model folder on another machine (`hf download {model_id} --local-dir {folder}`), "
        f"copy it here and pass --model {folder}"
    )


def _from_modelscope(name: str, backend: str) -> ModelRef:
    model_id = name[len(MODELSCOPE) :].strip().lstrip("/")  # also modelscope://org/name
    if not _HUB_ID.match(model_id):
        raise ModelError(
            f"Model '{name}' is not a ModelScope id like 'modelscope:damo/model-name'",
            f"Check the spelling, or pass {EXAMPLES[backend]}",
        )
    folder = local_folder(model_id)
    how = f"`modelscope download --model {model_id} --local_dir {folder}` and pass --model {folder}"
    try:
        from modelscope import snapshot_download
    except ImportError:  # not installed (or a broken install): the command line tool needs it as well
        raise ModelError(
            f"Model '{name}' is on ModelScope, and the modelscope package that downloads it is not installed",
            f"Download the folder with `pip install modelscope`, then {how}",
        ) from None
    try:
        location = snapshot_download(model_id)
    except Exception as exc:  # noqa: BLE001 -- network, unknown id, permissions: all mean "not downloaded"
        raise ModelError(
            f"Model '{name}' could not be downloaded from ModelScope ({_reason(exc)})",
            f"Check the id on modelscope.cn, or download it where ModelScope can be reached with {how}",
        ) from exc
    return ModelRef(name, str(location), True, backend)


def _reason(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def unavailable(ref: ModelRef, exc: BaseException) -> ModelError:
    """The error for a model that is not on this machine (offline) or cannot be read."""
    reason = _reason(exc)
    if ref.local:
        return ModelError(
            f"Folder '{ref.location}' is not a readable {KINDS[ref.backend]} model ({reason})",
            f"Pass {EXAMPLES[ref.backend]}",
        )
    return ModelError(
        f"The {KINDS[ref.backend]} model '{ref.name}' is not on this machine and could not be downloaded",
        f"To use a mirror set HF_ENDPOINT (e.g. HF_ENDPOINT={MIRROR}), or {bring_in(ref.name)}",
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
