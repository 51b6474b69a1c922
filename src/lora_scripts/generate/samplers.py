"""WebUI sampler names -> diffusers schedulers (the table: config/sample.py; building one: models/render)."""

from __future__ import annotations

from ..config.sample import SAMPLERS, sampler_name  # the one sampler table, checked when configs load
from ..models.render import make_scheduler

__all__ = ["SAMPLERS", "make_scheduler", "sampler_name"]
