"""WebUI sampler names -> diffusers schedulers, built from the base model's noise-schedule config."""

from __future__ import annotations

from ..config.sample import SAMPLERS, sampler_name  # the one sampler table, checked when configs load

__all__ = ["SAMPLERS", "make_scheduler", "sampler_name"]


def make_scheduler(name: str, base_config: dict):
    """A fresh scheduler for sampler `name` with the model's betas and prediction type."""
    cls, extra = SAMPLERS[sampler_name(name)]
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    return cls.from_config({**config, "steps_offset": 1, **extra})
