"""Loading transformers labelling models (classifiers, captioners) with one sentence for every failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .source import ModelRef, unavailable, wrong_kind


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
        found = "WD14 ONNX tagger" if any(Path(ref.location).glob("*.onnx")) else "folder without config.json"
        raise wrong_kind(ref, found)
    kwargs = {"local_files_only": ref.local}
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
