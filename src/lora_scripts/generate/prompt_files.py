"""Prompts files for batch runs: .txt (one prompt a line), .csv (a `prompt` column) or .yaml (a list)."""

from __future__ import annotations

import csv
import difflib
from pathlib import Path

import yaml

from ..errors import ConfigError
from .prompts import PromptSpec
from .samplers import sampler_name

FIELDS = {  # per-prompt settings a file may set, and their types
    "prompt": str,
    "negative_prompt": str,
    "steps": int,
    "cfg_scale": float,
    "width": int,
    "height": int,
    "sampler": str,
}


def read_prompt_file(path: Path, defaults: dict) -> list[PromptSpec]:
    """Specs for every prompt in `path`; `defaults` are the settings a row does not set."""
    if not path.is_file():
        raise ConfigError(f"The prompts file '{path}' does not exist", "Check the path given to --prompts")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the prompts file '{path}': {exc}", "Save it as UTF-8 text") from exc
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    elif suffix in (".yaml", ".yml"):
        rows = _yaml_rows(text, path)
    elif suffix == ".txt":
        rows = [{"prompt": line.strip()} for line in text.splitlines() if line.strip() and line[0] != "#"]
    else:
        raise ConfigError(f"The prompts file '{path}' is not .txt, .csv or .yaml", "Use one of those formats")
    specs = [_spec(row, defaults, f"{path}, prompt {i + 1}") for i, row in enumerate(rows)]
    if not specs:
        raise ConfigError(f"The prompts file '{path}' has no prompts", "Write one prompt per line (txt)")
    return specs


def _yaml_rows(text: str, path: Path) -> list[dict]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"The prompts file '{path}' is not valid YAML: {exc}", "Fix the YAML") from exc
    if isinstance(data, dict) and "prompts" in data:
        data = data["prompts"]
    if not isinstance(data, list):
        raise ConfigError(
            f"The prompts file '{path}' must hold a list of prompts",
            "Write `- prompt text` lines, or `- {prompt: ..., negative_prompt: ...}` items",
        )
    return [item if isinstance(item, dict) else {"prompt": str(item)} for item in data]


def _spec(row: dict, defaults: dict, where: str) -> PromptSpec:
    values = {}
    for key, raw in row.items():
        key = (key or "").strip()
        if key not in FIELDS:
            close = difflib.get_close_matches(key, list(FIELDS), n=1)
            hint = f"Did you mean '{close[0]}'?" if close else f"Columns: {', '.join(FIELDS)}"
            raise ConfigError(f"Unknown column '{key}' in {where}", hint)
        if raw is None or str(raw).strip() == "":
            continue
        try:
            values[key] = FIELDS[key](raw if FIELDS[key] is str else str(raw).strip())
        except ValueError as exc:
            raise ConfigError(
                f"'{key}' is '{raw}' in {where}, which is not a number", "Write a number"
            ) from exc
    if not values.get("prompt"):
        raise ConfigError(f"{where} has no prompt text", "Fill in the prompt, or remove the empty row")
    settings = {**defaults, **values}
    settings["sampler"] = sampler_name(settings.get("sampler", "Euler a"))
    return PromptSpec.from_text(settings.pop("prompt"), **settings)
