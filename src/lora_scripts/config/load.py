"""YAML (and `key=value` overrides) -> Config, with errors a non-expert can act on."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .root import ALIASES, SECTIONS, Config, key_to_section


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, apply `key=value` overrides and validate it."""
    raw = read_yaml(Path(path))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"Override '{item}' is not in key=value form", "Write it like learning_rate=1e-4"
            )
        key = key.strip()
        _forget(raw, ALIASES.get(key, key))  # an override replaces the key wherever the YAML set it
        raw[key] = yaml.safe_load(value) if value.strip() else None
    return build_config(raw, source=str(path))


def _forget(raw: dict[str, Any], key: str) -> None:
    for name in [k for k in raw if ALIASES.get(str(k), str(k)) == key]:
        del raw[name]
    for section in (raw.get(name) for name in SECTIONS):
        if isinstance(section, dict):
            for name in [k for k in section if ALIASES.get(str(k), str(k)) == key]:
                del section[name]


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist", "Check the path, or copy one from configs/")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        tab = " (YAML does not allow tab characters for indentation; use spaces)" if "\t" in text else ""
        raise ConfigError(
            f"Config file '{path}' is not valid YAML{line}{tab}", "Fix that line; every entry is `key: value`"
        ) from exc
    if data is None:
        raise ConfigError(f"Config file '{path}' is empty", "Copy an example from configs/ and edit it")
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file '{path}' must be a list of `key: value` lines, not a {type(data).__name__}"
        )
    return data


def build_config(raw: dict[str, Any], source: str = "config") -> Config:
    """Place flat keys into their sections (sectioned YAML works too) and validate."""
    owners = key_to_section()
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in raw.items():
        key = str(key)
        if key in SECTIONS:
            for sub_key, sub_value in _section_items(key, value, source):
                _place(nested, owners, str(sub_key), sub_value, source, section_hint=key)
        else:
            _place(nested, owners, key, value, source)
    values = {name: {k: v for k, (_, v) in keys.items()} for name, keys in nested.items()}
    _require(values, source)
    try:
        return Config(**{name: keys for name, keys in values.items() if keys or name in ("model", "data")})
    except ValidationError as exc:
        raise ConfigError(_explain(exc.errors(), source)) from exc


def _section_items(section: str, value: Any, source: str):
    if value is None:  # `sample:` with nothing under it
        return []
    if not isinstance(value, dict):
        raise ConfigError(
            f"Section '{section}' in {source} must hold `key: value` lines, not {value!r}",
            f"Indent its keys under `{section}:`, or write them flat without the section",
        )
    return list(value.items())


def _place(nested, owners, key, value, source, section_hint=None):
    written, key = key, ALIASES.get(key, key)
    section = owners.get(key)
    if section is None:
        raise ConfigError(f"Unknown key '{key}' in {source}", _did_you_mean(key, owners))
    if section_hint and section != section_hint:
        raise ConfigError(
            f"Key '{key}' in {source} is under section '{section_hint}' but belongs to '{section}'",
            f"Move it under `{section}:`, or write it flat without a section",
        )
    if key in nested[section]:  # flat and under its section, or as ours and as kohya's name
        first = nested[section][key][0]
        names = f" (as '{first}' and as '{written}')" if first != written else ""
        raise ConfigError(
            f"Key '{key}' is set twice in {source}{names}; only one value can count",
            "Delete one of the two lines",
        )
    nested[section][key] = (written, value)


def _require(nested, source):
    for section, key, hint in (
        ("model", "base_model", "point it at your .safetensors checkpoint or diffusers folder"),
        ("data", "train_data_dir", "point it at the folder of training images"),
    ):
        if nested[section].get(key) in (None, ""):
            raise ConfigError(f"Key '{key}' is missing in {source}", f"Add `{key}: ...`: {hint}")


def _did_you_mean(key: str, owners: dict[str, str]) -> str:
    close = difflib.get_close_matches(key, list(owners) + list(ALIASES), n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{ALIASES.get(close[0], close[0])}'?"
    return "See docs/config.md for every valid key"


_TYPE_WORDS = {
    "float_parsing": "a number such as 2e-4",
    "float_type": "a number such as 2e-4",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "path_type": "a path",
}


def _explain(errors: list[dict[str, Any]], source: str) -> str:
    """One sentence for pydantic's first error. Its loc is (section, key, [item index | union member])."""
    err = errors[0]
    loc = err["loc"]
    if len(loc) < 2:  # a check across the keys of one section: its message names them
        return f"In {source}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    key, rest = str(loc[1]), loc[2:]
    item = next((i for i in rest if isinstance(i, int)), None)
    where = f"Key '{key}'" + (f" (item {item + 1})" if item is not None else "")
    if rest and isinstance(rest[-1], str):  # a union (e.g. a number or `auto`): name every accepted form
        same = [e for e in errors if e["loc"][:2] == loc[:2]]
        allowed = " or ".join(dict.fromkeys(_allowed(e) for e in same))
        return f"{where} in {source} has value {err.get('input')!r}, but it must be {allowed}"
    if err["type"] == "extra_forbidden":
        return f"Unknown key '{key}' in {source}"
    return f"{where} in {source} has value {err.get('input')!r}, but it must be {_allowed(err)}"


def _allowed(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _TYPE_WORDS:
        allowed = _TYPE_WORDS[kind]
    elif kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        allowed = f"one of {expected}" if " or " in expected else expected
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        bound = next(iter(ctx.values()), "")
        allowed = f"a value {sign} {bound}"
    elif kind == "multiple_of":
        allowed = f"a multiple of {ctx.get('multiple_of')}"
    elif kind == "string_pattern_mismatch":
        allowed = 'a name without / \\ : * ? " < > |'
    elif kind == "value_error":
        allowed = str(err.get("msg", "")).removeprefix("Value error, ")
    else:
        allowed = err.get("msg", "a valid value")
    return allowed
