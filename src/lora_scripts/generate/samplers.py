"""WebUI sampler names -> diffusers schedulers, built from the base model's noise-schedule config."""

from __future__ import annotations

import difflib

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)

from ..errors import ConfigError

SAMPLERS = {  # WebUI name -> (scheduler class, extra config)
    "Euler a": (EulerAncestralDiscreteScheduler, {}),
    "Euler": (EulerDiscreteScheduler, {}),
    "DPM++ 2M": (DPMSolverMultistepScheduler, {}),
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    "DDIM": (DDIMScheduler, {"set_alpha_to_one": False}),
    "UniPC": (UniPCMultistepScheduler, {}),
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


def sampler_name(name: str) -> str:
    """The canonical WebUI spelling of `name` ("euler_a", "Euler A" -> "Euler a"), or a ConfigError."""
    by_key = {_key(n): n for n in SAMPLERS}
    found = by_key.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(name, list(SAMPLERS), n=1, cutoff=0.5)
        maybe = f"Did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"Unknown sampler '{name}'", f"{maybe}Samplers: {', '.join(repr(n) for n in SAMPLERS)}"
        )
    return found


def make_scheduler(name: str, base_config: dict):
    """A fresh scheduler for sampler `name` with the model's betas and prediction type."""
    cls, extra = SAMPLERS[sampler_name(name)]
    config = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
    return cls.from_config({**config, "steps_offset": 1, **extra})
