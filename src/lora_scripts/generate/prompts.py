"""WebUI prompt syntax: `<lora:name:weight>` tags inside the prompt text, and one image's settings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # models/render imports torch: prompts are parsed (and their mistakes said) without it
    from ..models.render import RenderRequest

# WebUI's extra-network syntax `<kind:args>`; LyCORIS' `<lyco:...>` tags name LoRA files too.
TAG = re.compile(r"<\s*(lora|lyco)\s*:([^<>]*)>", re.IGNORECASE)
OPEN_TAG = re.compile(r"<\s*(lora|lyco)\s*:", re.IGNORECASE)
EXAMPLE = "<lora:tech_phone:0.7> futuristic smartphone"


@dataclass(frozen=True)
class LoraRef:
    """One `<lora:name:weight>` tag: weight 1.0 when left out, negative and > 1 allowed."""

    name: str
    weight: float = 1.0

    def tag(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>"


@dataclass(frozen=True)
class PromptSpec:
    """Everything that makes one image: the prompt without tags, its LoRAs, and the sampling settings."""

    prompt: str
    loras: tuple[LoraRef, ...] = ()
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = "Euler a"
    extra: dict[str, str] = field(default_factory=dict, compare=False)  # e.g. grid labels

    @classmethod
    def from_text(cls, text: str, **settings) -> PromptSpec:
        prompt, loras = parse_prompt(text)
        return cls(prompt=prompt, loras=tuple(loras), **settings)

    @property
    def text(self) -> str:
        """The prompt as a WebUI user writes it: tags first, then the text (parses back to this spec)."""
        return " ".join([*(ref.tag() for ref in self.loras), self.prompt]).strip()

    def request(self) -> RenderRequest:
        """The settings of this image for models/render (the LoRA tags are applied by generate's stack)."""
        from ..models.render import RenderRequest

        return RenderRequest(
            self.prompt,
            self.negative_prompt,
            self.seed,
            self.steps,
            self.cfg_scale,
            self.width,
            self.height,
            self.sampler,
        )

    def with_weight(self, name: str | None, weight: float) -> PromptSpec:
        """Set the weight of LoRA `name` (added when missing), or of every tag when name is None."""
        if name is None:
            return replace(self, loras=tuple(LoraRef(r.name, weight) for r in self.loras))
        kept = [r for r in self.loras if r.name != name]
        return replace(self, loras=(*kept, LoraRef(name, weight)))


def parse_prompt(text: str) -> tuple[str, list[LoraRef]]:
    """`"<lora:a:0.7> <lora:b> phone, glowing"` -> ("phone, glowing", [a 0.7, b 1.0])."""
    loras = [_parse_tag(m.group(0), m.group(2)) for m in TAG.finditer(text)]
    rest = TAG.sub(" ", text)
    if OPEN_TAG.search(rest):
        raise ConfigError(
            f"The prompt '{text}' has a LoRA tag without its closing '>'", f"Write tags like {EXAMPLE}"
        )
    seen: set[str] = set()
    for ref in loras:
        if ref.name in seen:
            raise ConfigError(
                f"The LoRA '{ref.name}' appears twice in the prompt '{text}'",
                "Keep one tag per LoRA and put the total weight in it",
            )
        seen.add(ref.name)
    return _tidy(rest), loras


def _parse_tag(tag: str, args: str) -> LoraRef:
    parts = [p.strip() for p in args.split(":")]
    name = parts[0]
    if not name:
        raise ConfigError(f"The LoRA tag '{tag}' has no name", f"Write tags like {EXAMPLE}")
    if len(parts) > 2:
        raise ConfigError(
            f"The LoRA tag '{tag}' has more than one weight; separate text-encoder/UNet weights are not "
            "supported",
            f"Give one weight, like <lora:{name}:0.7>",
        )
    if len(parts) == 1 or parts[1] == "":
        return LoraRef(name)
    try:
        weight = float(parts[1])
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise ConfigError(
            f"The LoRA tag '{tag}' has the weight '{parts[1]}', which is not a number",
            f"Write a number such as 0.7, -0.5 or 1.2: <lora:{name}:0.7>",
        )
    return LoraRef(name, weight)


def _tidy(text: str) -> str:
    """Remove the gaps that taking tags out leaves: runs of spaces, empty comma slots, edge commas."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip().strip(",").strip()
