"""A tiny SDXL 'fine-tune' for the extract tests: the base written to disk, and a copy whose named modules
got a random change of a known rank, saved as a diffusers folder `root/tuned`."""

from __future__ import annotations

from pathlib import Path

import torch

from lora_scripts.models.tiny_sdxl import build_tiny_sdxl, save_tiny_sdxl


def tuned_sdxl(root: Path, changed: dict[str, list[str]], rank: int, seed: int) -> tuple[dict, object]:
    """(the base's paths from save_tiny_sdxl, the tuned pipeline); each module of `changed` (component ->
    module paths) gets 0.02 * a random rank-`rank` matrix, drawn in the dict's order."""
    base = save_tiny_sdxl(root)
    pipe = build_tiny_sdxl()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for component, paths in changed.items():
            for path in paths:
                w = getattr(pipe, component).get_submodule(path).weight
                left = torch.randn(w.shape[0], rank, generator=gen)
                w += 0.02 * (left @ torch.randn(rank, w[0].numel(), generator=gen)).reshape(w.shape)
    pipe.save_pretrained(root / "tuned", safe_serialization=True)
    return base, pipe
