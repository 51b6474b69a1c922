"""Modules come to the accelerator only for the phase that needs them (kohya's low-memory order): the VAE
alone while latents are cached, the text encoders alone while their outputs are, then what training calls.
What only made cached inputs stays on the CPU and comes back only for samples.

Hand-written: accelerate's cpu_offload moves weights in and out at every forward, which training the UNet
does not need; these modules are not called at all between samples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

log = logging.getLogger(__name__)
PARKED = torch.device("cpu")


def park(owner: object, names: list[str]) -> tuple[str, ...]:
    """Move the modules `owner.<name>` to the CPU and free the accelerator's cached blocks."""
    for name in names:
        getattr(owner, name).to(PARKED)
    if names and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return tuple(names)


def hold(owner: object, names: list[str], others: list[str], device: torch.device) -> tuple[str, ...]:
    """`owner.<name>` for `names` on `device`, those of `others` on the CPU; the CPU first, so the two never
    share the accelerator. Returns what is now on `device` (the owner's record of its residents)."""
    park(owner, [n for n in others if n not in names])
    for name in names:
        getattr(owner, name).to(device)
    return tuple(names)


@contextmanager
def brought_back(owner: object, names: tuple[str, ...], device: torch.device | None) -> Iterator[None]:
    """The parked modules on `device` for the duration (samples need them), parked again afterwards."""
    if not names or device is None or device == PARKED:
        yield
        return
    for name in names:
        getattr(owner, name).to(device)
    try:
        yield
    finally:
        park(owner, list(names))
