"""Loading transformers labelling models (classifiers, captioners) with one sentence for every failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError
from .source import EXAMPLES, KINDS, ModelRef, unavailable, wrong_kind


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_transformers(auto_model: Any, auto_processor: Any, ref: ModelRef, device: str) -> tuple[Any, Any]:
    """(model, processor) from a folder or hub id; a model of another kind is a ModelError."""
    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar is the one that matters

    if ref.local and not (Path(ref.location) / "config.json").is_file():
        raise _not_transformers(ref)
    kwargs = {"local_files_only": ref.local or ref.cache_only}
    try:
        config = AutoConfig.from_pretrained(ref.location, **kwargs)
    except (OSError, ValueError) as exc:
        raise unavailable(ref, exc) from exc
    try:
        model = auto_model.from_pretrained(ref.location, **kwargs)
    except ValueError as exc:  # "Unrecognized configuration class ... for this kind of AutoModel"
        raise wrong_kind(ref, f"'{config.model_type}' model") from exc
    except OSError as exc:
        raise unavailable(ref, exc) from exc
    try:
        processor = auto_processor.from_pretrained(ref.location, **kwargs)
    except (OSError, ValueError) as exc:
        raise unavailable(ref, exc) from exc
    return model.to(pick_device(device)).eval(), processor


def _not_transformers(ref: ModelRef) -> ModelError:
    """A folder without config.json: a WD14 tagger, a ModelScope pipeline model, or something else."""
    folder = Path(ref.location)
    if any(folder.glob("*.onnx")):
        return wrong_kind(ref, "WD14 ONNX tagger")
    if (
        folder / "configuration.json"
    ).is_file():  # ModelScope's file; its transformers models add config.json
        return ModelError(
            f"Folder '{ref.name}' has ModelScope's configuration.json but no config.json, so it is a "
            f"ModelScope pipeline model, not a transformers {KINDS[ref.backend]} model",
            "Download the model's transformers version (its folder has config.json), "
            f"or pass {EXAMPLES[ref.backend]}",
        )
    return wrong_kind(ref, "folder without config.json")
