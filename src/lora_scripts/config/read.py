"""Reading a config file into a dict: our YAML, kohya sd-scripts' TOML (`--config_file`) and the kohya_ss
GUI's saved JSON. What the keys mean is config/kohya.py's; this only reads, and says where a file cannot."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .root import SECTIONS


def read_config_file(path: Path) -> dict[str, Any]:
    """The file's keys, by its extension: .toml (kohya's), .json (the kohya_ss GUI's), else YAML."""
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return read_toml(path)
    if suffix == ".json":
        return read_json(path)
    return read_yaml(path)


def _text(path: Path) -> str:
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist", "Check the path, or copy one from configs/")
    try:  # strict: replacement characters would silently garble a Chinese output_name or prompt
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file '{path}' is not UTF-8 text (byte {exc.start + 1} cannot be read)",
            "Save it as UTF-8 (in Notepad: Save as, Encoding: UTF-8)",
        ) from exc


def read_toml(path: Path) -> dict[str, Any]:
    """kohya's TOML: its tables ([model_arguments], [training_arguments], ...) only group, so their keys count
    as written at the top, as sd-scripts' read_config_from_file reads them; tables named after our sections
    stay sections."""
    data = read_toml_tables(path)
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for name, value in data.items():
        grouped = isinstance(value, dict) and name not in SECTIONS
        for key, item in value.items() if grouped else [(name, value)]:
            table = f"[{name}]" if grouped else "the top level"
            if key in flat:
                raise ConfigError(
                    f"Key '{key}' is set twice in {path} (in {where[key]} and in {table}); "
                    "only one value can count",
                    "Delete one of the two lines",
                )
            flat[key], where[key] = item, table
    if not flat:
        raise ConfigError(f"Config file '{path}' is empty", "Copy an example from configs/ and edit it")
    return flat


def read_toml_tables(path: Path, what: str = "Config file") -> dict[str, Any]:
    """A TOML file's tables as they are (kohya's dataset TOML keeps them); ``what`` names it in errors."""
    text = _text(path)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(
                f"Reading the TOML file '{path}' needs Python 3.11 or the tomli package",
                "pip install tomli, or write the config as YAML",
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} '{path}' is not valid TOML ({exc})", "Fix that line") from exc


def read_json(path: Path) -> dict[str, Any]:
    """The kohya_ss GUI's saved JSON: an empty string is its "not set", so those keys are left out."""
    text = _text(path)
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as dup:
        raise ConfigError(
            f"Key '{dup.key}' is set twice in {path}; only one value can count", "Delete one of the two lines"
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Config file '{path}' is not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})",
            "Fix that line",
        ) from exc
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"Config file '{path}' must be a JSON object of \"key\": value pairs")
    return {key: value for key, value in data.items() if value != ""}


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key, 0, 0)
        seen[key] = value
    return seen


def read_yaml(path: Path) -> dict[str, Any]:
    text = _text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as dup:
        raise ConfigError(
            f"Key '{dup.key}' is set twice in {path} (lines {dup.first} and {dup.second}); "
            "only one value can count",
            "Delete one of the two lines",
        ) from None
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


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int):
        self.key, self.first, self.second = key, first, second


class YamlLoader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false. PyYAML follows YAML 1.1, where `doctor: off` and
    `mixed_precision: no` read as False and were refused as "False is not one of error, warn or off"; as
    text they reach the field, and a yes/no/on/off for a true/false field is read by pydantic as it was."""


YamlLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml_text(text: str) -> Any:
    """A YAML value or document read with YamlLoader (command-line overrides, the web UI's form text)."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


class _UniqueKeyLoader(YamlLoader):
    """PyYAML keeps the last of two equal keys without a word; a config must not (which one was meant?)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader's own error says so
                    break
        return super().construct_mapping(node, deep=deep)
