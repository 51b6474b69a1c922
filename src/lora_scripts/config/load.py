"""A config file (YAML; kohya's TOML; the kohya_ss GUI's JSON) and `key=value` overrides -> Config, with
errors a non-expert can act on."""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .kohya import kohya_names, rule_for
from .kohya_dataset import DatasetToml, read_dataset_config
from .kohya_rules import Refused, off, shown
from .read import load_yaml_text, read_config_file, read_yaml
from .root import ALIASES, SECTIONS, Config, key_to_section
from .route import IMAGE_ONLY, IMAGE_SECTIONS, LLM, LLM_ONLY, LLM_SECTIONS, route_of

__all__ = ["build_config", "load_config", "read_config_file", "read_yaml"]
log = logging.getLogger(__name__)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a config file, apply `key=value` overrides and validate it."""
    raw = read_config_file(Path(path))
    typed: dict[str, str] = {}  # key -> the override as typed, so errors name it instead of the file
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"Override '{item}' is not in key=value form", "Write it like learning_rate=1e-4"
            )
        key = key.strip()
        _forget(raw, ALIASES.get(key, key))  # an override replaces the key wherever the YAML set it
        raw[key] = _override_value(item, value)
        typed[ALIASES.get(key, key)] = typed[key] = item
    return build_config(raw, source=str(path), overrides=typed, config_dir=Path(path).parent)


def _override_value(item: str, value: str) -> Any:
    if not value.strip():
        return None
    try:
        return load_yaml_text(value)
    except yaml.YAMLError as exc:  # the parser's own words ("expected the node content") help nobody
        raise ConfigError(
            f"The command-line override '{item}' has a value that cannot be read",
            "Write it like learning_rate=1e-4, and put text with brackets or colons in quotes",
        ) from exc


def _forget(raw: dict[str, Any], key: str) -> None:
    for name in [k for k in raw if ALIASES.get(str(k), str(k)) == key]:
        del raw[name]
    for section in (raw.get(name) for name in SECTIONS):
        if isinstance(section, dict):
            for name in [k for k in section if ALIASES.get(str(k), str(k)) == key]:
                del section[name]


@dataclass(frozen=True)
class _Where:
    """Names the place a key came from in messages: the YAML file, or the command-line override."""

    source: str
    overrides: dict[str, str]
    origins: dict[str, str] = field(default_factory=dict)  # our key -> the dataset TOML that set it

    def key(self, key: str, detail: str = "") -> str:
        """ "Key 'k' in cfg.yaml" or "The command-line override 'k=v'" (a sentence's subject)."""
        typed = self.overrides.get(key)
        if typed:
            return f"The command-line override '{typed}'{detail}"
        return f"Key '{key}'{detail} in {self.origins.get(key, self.source)}"

    def of(self, key: str) -> str:
        """ "cfg.yaml" or "the command-line override 'k=v'" (after "in")."""
        typed = self.overrides.get(key)
        return f"the command-line override '{typed}'" if typed else self.origins.get(key, self.source)

    def section(self, section: str) -> str:
        """The file, plus the overrides that set keys of ``section`` (for checks across keys)."""
        owners = key_to_section()
        typed = list(dict.fromkeys(i for k, i in self.overrides.items() if owners.get(k) == section))
        if not typed:
            return self.source
        return f"{self.source} with the command-line override {', '.join(repr(t) for t in typed)}"


def build_config(
    raw: dict[str, Any],
    source: str = "config",
    overrides: dict[str, str] | None = None,
    config_dir: Path | None = None,
) -> Config:
    """Place flat keys into their sections (sectioned YAML works too), read kohya's keys (config/kohya.py)
    and validate. ``overrides`` maps keys set on the command line to the `key=value` text typed, so errors
    name that instead of ``source``. A kohya dataset_config is read (from the current folder, else from
    ``config_dir``) and its keys win over the file's, as in kohya; an override wins over both. What kohya's
    keys became, or why they do nothing, is logged once the config is valid."""
    where = _Where(source, overrides or {})
    owners = key_to_section()
    nested: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    written = _written(raw, source)
    given = {key: value for key, value, _ in written}
    toml = _dataset_toml(given, where, config_dir)
    notes: list[str] = []
    placed = []  # (our key, value, the key as written, its section if it was written as ours, rank)
    if toml is not None:
        given = {**given, **toml.keys}  # kohya's defaults (network_module) then leave its keys alone
        placed += _from_toml(toml, given, notes)
        where = replace(where, origins={ours: toml.source for ours, *_ in placed})
    for key, value, section in written:
        translated = _translated(key, value, given, where, notes)
        plain = translated == [(ALIASES.get(key, key), value)]
        rank = _TYPED if key in where.overrides else _FILE
        placed += [(k, v, key, section if plain else None, rank) for k, v in translated]
    top: dict[str, int] = {}
    for ours, *_, rank in placed:
        top[ours] = max(top.get(ours, rank), rank)
    for ours, value, key, section, rank in placed:  # an override wins, then the dataset TOML, then the file
        if rank == top[ours]:
            _place(nested, owners, ours, value, key, where, section_hint=section)
        elif rank == _FILE and top[ours] == _TOML:
            notes += _overridden(ours, value, key, nested, where.source, toml.source if toml else "")
    values = {name: {k: v for k, (_, v) in keys.items()} for name, keys in nested.items()}
    model = values["model"]
    llm_keys = bool(values["llm"]) or any(k in LLM_ONLY for keys in values.values() for k in keys)
    route, why = route_of(model.get("base_model") or "", model.get("model_type", "auto"), llm_keys)
    _check_route(values, route, why, where)
    data_section = "llm" if route == LLM else "data"
    _require(values, where, data_section)
    try:
        cfg = Config(
            **{name: keys for name, keys in values.items() if keys or name in ("model", data_section)}
        )
    except ValidationError as exc:
        raise ConfigError(_explain(exc.errors(), where)) from exc
    for note in notes:
        log.info("%s", note)
    return cfg


# who wins when several set one key: the command line, then the dataset TOML, then the file
_FILE, _TOML, _TYPED = 0, 1, 2


def _dataset_toml(given: dict[str, Any], where: _Where, config_dir: Path | None) -> DatasetToml | None:
    if off(given.get("dataset_config")):
        return None
    try:
        return read_dataset_config(given["dataset_config"], given, config_dir)
    except Refused as no:
        raise ConfigError(f"{where.key('dataset_config')} {no.what}", no.hint) from None


def _from_toml(toml: DatasetToml, given: dict[str, Any], notes: list[str]) -> list[tuple]:
    """The dataset TOML's keys, read by the kohya table as a training config's are, placed at its rank."""
    from_toml = _Where(toml.source, {})
    placed = []
    for key, value in toml.keys.items():
        placed += [(k, v, key, None, _TOML) for k, v in _translated(key, value, given, from_toml, notes)]
    notes.append(f"dataset_config (kohya's): {toml.note}")
    return placed


def _overridden(ours: str, value: Any, key: str, nested, source: str, toml: str) -> list[str]:
    """The note for a file's key the dataset TOML sets otherwise (kohya overrides the training config's)."""
    won = nested[key_to_section()[ours]][ours][1]
    if won == value or str(won) == str(value):
        return []
    return [
        f"{key}: {shown(value)} in {source} gives way to {shown(won)} from {toml}, as kohya reads a "
        "dataset_config's data over the training config's"
    ]


def _written(raw: dict[str, Any], source: str) -> list[tuple[str, Any, str | None]]:
    """(key, value, the section it was written under or None) for every key, as written."""
    found: list[tuple[str, Any, str | None]] = []
    for key, value in raw.items():
        if str(key) in SECTIONS:
            found += [(str(k), v, str(key)) for k, v in _section_items(str(key), value, source)]
        else:
            found.append((str(key), value, None))
    return found


def _section_items(section: str, value: Any, source: str):
    if value is None:  # `sample:` with nothing under it
        return []
    if not isinstance(value, dict):
        raise ConfigError(
            f"Section '{section}' in {source} must hold `key: value` lines, not {value!r}",
            f"Indent its keys under `{section}:`, or write them flat without the section",
        )
    return list(value.items())


def _translated(key: str, value: Any, given: dict[str, Any], where: _Where, notes: list[str]):
    """[(our key, value)] for a key as written: ours, a rename (root.ALIASES) or kohya's (config/kohya)."""
    rule = rule_for(key)
    if rule is None:
        return [(ALIASES.get(key, key), value)]
    if key in where.overrides and key in key_to_section():
        given = {key: value}  # our key typed on the command line means just that, whatever the file says
    try:
        values, note = rule.apply(value, given)
    except Refused as no:
        raise ConfigError(f"{where.key(no.key or key)} {no.what}", no.hint) from None
    except ValueError as exc:
        raise ConfigError(f"{where.key(key)} has value {_shown(value)}, but it must be {exc}") from None
    if note:
        notes.append(f"{key} (kohya's): {note}")
    return list(values.items())


def _place(nested, owners, key, value, written, where: _Where, section_hint=None):
    section = owners.get(key)
    if section is None:
        raise ConfigError(f"Unknown key '{key}' in {where.of(key)}", _did_you_mean(key, owners))
    if section_hint and section != section_hint:
        raise ConfigError(
            f"Key '{key}' in {where.source} is under section '{section_hint}' but belongs to '{section}'",
            f"Move it under `{section}:`, or write it flat without a section",
        )
    if key in nested[section]:  # flat and under its section, or as ours and as kohya's name
        first = nested[section][key][0]
        names = f" (as '{first}' and as '{written}')" if first != written else ""
        raise ConfigError(
            f"Key '{key}' is set twice in {where.source}{names}; only one value can count",
            "Delete one of the two lines",
        )
    nested[section][key] = (written, value)


def _check_route(values: dict[str, dict[str, Any]], route: str, why: str, where: _Where) -> None:
    """Keys of the other route are refused in one sentence that says which route this config takes and why."""
    for section, keys in values.items():
        for key in keys:
            if route == LLM and (section in IMAGE_SECTIONS or key in IMAGE_ONLY):
                hint = (
                    "Give the chat data file in `dataset:` instead"
                    if key == "train_data_dir"
                    else "Remove it (see configs/cs_tone.yaml for the LLM keys)"
                )
                raise ConfigError(
                    f"{where.key(key)} is an image-route key, but this config trains an LLM ({why})", hint
                )
            if route != LLM and (section in LLM_SECTIONS or key in LLM_ONLY):
                raise ConfigError(
                    f"{where.key(key)} is an LLM key, but this config trains an image LoRA ({why})",
                    "Remove it, or set model_type: llm if base_model is a language model",
                )


def _require(nested, where: _Where, data_section: str = "data"):
    data_key = {
        "data": ("data", "train_data_dir", "point it at the folder of training images"),
        "llm": ("llm", "dataset", "point it at the chat data (.jsonl, .json or .csv)"),
    }[data_section]
    for section, key, hint in (
        ("model", "base_model", "point it at your .safetensors checkpoint or diffusers folder"),
        data_key,
    ):
        if nested[section].get(key) not in (None, ""):
            continue
        if key in where.overrides:
            raise ConfigError(f"{where.key(key)} leaves '{key}' empty", f"Write it like {key}=...: {hint}")
        raise ConfigError(f"Key '{key}' is missing in {where.source}", f"Add `{key}: ...`: {hint}")


def _did_you_mean(key: str, owners: dict[str, str]) -> str:
    names = [*owners, *ALIASES, *kohya_names()]  # kohya's own names are suggested as they are
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"Did you mean '{ALIASES.get(close[0], close[0])}'?"
    return "See docs/config.md for every valid key"


_TYPE_WORDS = {
    "float_parsing": "a number such as 2e-4",
    "float_type": "a number such as 2e-4",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "finite_number": "an ordinary number, not nan or inf",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "path_type": "a path",
    "list_type": "a list",
    "dict_type": "`key: value` lines",
}
_EXPONENT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+\s*$")  # 1e30, 2.5E+3


def _explain(errors: list[dict[str, Any]], where: _Where) -> str:
    """One sentence for pydantic's first error. Its loc is (section, key, [item index | union member])."""
    err = errors[0]
    loc = err["loc"]
    if len(loc) < 2:  # a check across the keys of one section: its message names them
        section = str(loc[0]) if loc else ""
        return f"In {where.section(section)}: {str(err.get('msg', '')).removeprefix('Value error, ')}"
    key, rest = str(loc[1]), loc[2:]
    item = next((i for i in rest if isinstance(i, int)), None)
    subject = where.key(key, f" (item {item + 1})" if item is not None else "")
    if err["type"] == "extra_forbidden":
        return f"Unknown key '{key}' in {where.of(key)}"
    if rest and isinstance(rest[-1], str):  # a union (e.g. a number or `auto`): name every accepted form
        same = [e for e in errors if e["loc"][:2] == loc[:2]]
        allowed = " or ".join(dict.fromkeys(_allowed(e) for e in same))
    else:
        allowed = _allowed(err)
    return f"{subject} has value {_shown(err.get('input'))}, but it must be {allowed}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "int_parsing_size":
        return f"a whole number of a usable size ({_shown(value)} is too large)"
    if kind == "int_parsing" and isinstance(value, str) and _EXPONENT.match(value):
        return f"a whole number written with digits only, such as 2000 ({value.strip()} is not)"
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"one of {expected}" if " or " in expected else expected
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        return f"a value {sign} {next(iter(ctx.values()), '')}"
    if kind == "multiple_of":
        return f"a multiple of {ctx.get('multiple_of')}"
    if kind == "string_pattern_mismatch":
        return 'a name without / \\ : * ? " < > |'
    if kind == "value_error":
        return str(err.get("msg", "")).removeprefix("Value error, ")
    return _plain(str(err.get("msg", "")))


def _plain(msg: str) -> str:
    """pydantic's other messages ("Input should be a valid list") as the end of our sentence."""
    for prefix in ("Input should be ", "Value should be ", "Value error, "):
        if msg.startswith(prefix):
            return msg.removeprefix(prefix).rstrip(".")
    return "a valid value"
