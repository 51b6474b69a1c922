"""`FILE:WEIGHT` arguments of `lora merge` and `lora merge-loras`. Light on purpose (no torch): the commands
check them before the heavy imports, so a typo is one sentence at once."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


def parse_weighted(spec: str) -> tuple[Path, float]:
    """'style.safetensors:0.7' -> (path, 0.7); no ':weight' means 1.0 (drive letters are not weights)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and not tail.startswith(("\\", "/")):
        try:
            return Path(head), float(tail)
        except ValueError as exc:
            raise ConfigError(
                f"'{tail}' in '{spec}' is not a weight",
                "Write FILE or FILE:WEIGHT, e.g. style.safetensors:0.7",
            ) from exc
    return Path(spec), 1.0
