"""`sample` section: images generated during training, to watch the LoRA learn.

Every sample setting is checked here, when the config is read, so a typo fails `--dry-run` instead of the
first sample step. The sampler-name table lives here too (config is the lowest layer that needs it);
generate/samplers.py builds the diffusers schedulers from it.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from ..errors import ConfigError
from .base import Section


class SchedulerClass:
    """A diffusers scheduler class by name, imported on first use (reading a config stays torch-free)."""

    def __init__(self, name: str):
        self.__name__ = name

    def from_config(self, config: dict, **kwargs: Any):
        return getattr(importlib.import_module("diffusers"), self.__name__).from_config(config, **kwargs)


SAMPLERS: dict[str, tuple[SchedulerClass, dict]] = {  # WebUI name -> (scheduler class, extra config)
    "Euler a": (SchedulerClass("EulerAncestralDiscreteScheduler"), {}),
    "Euler": (SchedulerClass("EulerDiscreteScheduler"), {}),
    "DPM++ 2M": (SchedulerClass("DPMSolverMultistepScheduler"), {}),
    "DPM++ 2M Karras": (SchedulerClass("DPMSolverMultistepScheduler"), {"use_karras_sigmas": True}),
    "DDIM": (SchedulerClass("DDIMScheduler"), {"set_alpha_to_one": False}),
    "UniPC": (SchedulerClass("UniPCMultistepScheduler"), {}),
}
# kohya's sample_sampler names for the same schedulers (its dpmsolver++ is DPMSolverMultistep's default)
KOHYA_SAMPLERS = {"k_euler": "Euler", "k_euler_a": "Euler a", "dpmsolver++": "DPM++ 2M"}
_LORA_TAG = re.compile(r"<\s*(lora|lyco)\s*:", re.IGNORECASE)
# kohya's per-prompt options (sd-scripts' line_to_prompt_dict), each followed by the value kohya reads: a
# number for the numeric ones, any word for the others. "neon phone --s 30" is an option there, prompt text
# here; "t-shirt -- red" or "--sigh" is text in both.
_PROMPT_OPTION = re.compile(
    r"(?:^|\s)--(?P<flag>(?:w|h|d|s|f|l|g|ctr|rcfg|fs|am)(?=\s+[\d.,-]*\d)|(?:n|ss|cn|i)(?=\s+\S))",
    re.IGNORECASE,
)
_PROMPT_OPTION_KEYS = {  # kohya's option -> our key, which sets it for every sample
    "n": "sample_negative_prompt",
    "s": "sample_steps",
    "d": "sample_seed",
    "l": "sample_cfg_scale",
    "w": "sample_size",
    "h": "sample_size",
    "ss": "sample_sampler",
}


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum() or ch == "+")


def _unknown_sampler(name: str) -> str:
    close = difflib.get_close_matches(name, list(SAMPLERS), n=1, cutoff=0.5)
    maybe = f"Did you mean '{close[0]}'? " if close else ""
    return f"{maybe}Samplers: {', '.join(repr(n) for n in SAMPLERS)}"


def canonical_sampler(name: str) -> str | None:
    """The canonical WebUI spelling of `name` ("euler_a", "Euler A", kohya's "k_euler_a" -> "Euler a"), None
    when unknown."""
    names = {_key(n): n for n in SAMPLERS} | {_key(k): n for k, n in KOHYA_SAMPLERS.items()}
    return names.get(_key(name))


def sampler_name(name: str) -> str:
    """The canonical WebUI spelling of `name`, or a ConfigError that suggests the closest one."""
    found = canonical_sampler(name)
    if found is None:
        raise ConfigError(f"Unknown sampler '{name}'", _unknown_sampler(name))
    return found


def prompt_option(prompt: str) -> str | None:
    """The first of kohya's per-prompt options in ``prompt`` ("--n"), or None."""
    found = _PROMPT_OPTION.search(prompt)
    return f"--{found['flag'].lower()}" if found else None


def prompt_option_advice(option: str) -> str:
    """What to do instead of kohya's per-prompt ``option`` (both the YAML check and the kohya import)."""
    key = _PROMPT_OPTION_KEYS.get(option.removeprefix("--"))
    instead = f"set {key} instead" if key else f"leave {option} out (it has no counterpart here)"
    return (
        f"remove the --options from the prompt and {instead}; kohya's --n, --s, --d, --l, --w/--h and --ss "
        "are sample_negative_prompt, sample_steps, sample_seed, sample_cfg_scale, sample_size and "
        "sample_sampler here, one value for every sample"
    )


class SampleConfig(Section):
    sample_prompts: list[str] = Field(
        default_factory=list,
        description="Prompts rendered with the LoRA being trained into output_dir/samples/ (and TensorBoard, "
        "and the grid in report.html). Plain text without <lora:...> tags (the trained LoRA is applied at "
        "weight 1) or kohya's per-prompt --n/--s/--w... options (sample_negative_prompt, sample_steps... set "
        "them). A failed sample is logged and skipped; training goes on. LLM route: questions, answered "
        "greedily by the base model and by the LoRA (samples/stepNNNNNN.json, TensorBoard, report.html).",
    )
    sample_every_n_steps: int = Field(
        0, ge=0, description="Render the sample prompts every N steps (0: off)."
    )
    sample_every_n_epochs: int = Field(
        0, ge=0, description="Render the sample prompts every N epochs (0: off)."
    )
    sample_negative_prompt: str = Field("", description="Negative prompt for the samples.")
    sample_steps: int = Field(20, ge=1, le=150, description="Denoising steps per sample image.")
    sample_sampler: str = Field(
        "Euler a",
        description="Sampler: "
        + ", ".join(SAMPLERS)
        + " (case and _ do not matter; kohya's "
        + ", ".join(KOHYA_SAMPLERS)
        + " too).",
    )
    sample_cfg_scale: float = Field(7.0, ge=0.0, le=30.0, description="CFG scale of the samples.")
    sample_seed: int = Field(1, description="Seed of the first sample prompt (the next ones count up).")
    sample_size: int | None = Field(
        None, ge=64, le=2048, multiple_of=8, description="Sample width and height. Empty: the resolution."
    )

    @field_validator("sample_prompts", mode="before")
    @classmethod
    def _one_prompt(cls, v):
        if isinstance(v, str):
            return [v]  # `sample_prompts: a phone` means one prompt, not a list of letters
        return [] if v is None else v

    @field_validator("sample_prompts")
    @classmethod
    def _no_lora_tags(cls, prompts: list[str]) -> list[str]:
        for prompt in prompts:
            if _LORA_TAG.search(prompt):
                raise ValueError(
                    f"plain prompts: '{prompt}' has a <lora:...> tag, and samples apply only the LoRA "
                    "being trained (at weight 1); remove the tag"
                )
            option = prompt_option(prompt)
            if option:  # kohya's "--n blurry": here it would be drawn as prompt text
                raise ValueError(
                    f"plain prompts: '{prompt}' has kohya's per-prompt option {option}, which is not read "
                    f"here; {prompt_option_advice(option)}"
                )
        return prompts

    @field_validator("sample_sampler")
    @classmethod
    def _known_sampler(cls, name: str) -> str:
        found = canonical_sampler(name)
        if found is None:
            raise ValueError(f"a sampler name. {_unknown_sampler(name)}")
        return found

    @model_validator(mode="after")
    def _prompts_when_scheduled(self):
        every = {k: getattr(self, k) for k in ("sample_every_n_steps", "sample_every_n_epochs")}
        scheduled = [f"{k}: {v}" for k, v in every.items() if v]
        if scheduled and not self.sample_prompts:
            raise ValueError(
                f"{scheduled[0]} is set but sample_prompts is empty, so no sample would ever be rendered. "
                f"Add sample_prompts, or remove {scheduled[0].split(':')[0]}"
            )
        return self
