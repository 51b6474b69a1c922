"""The train form, generated from the config sections (config/): every key, default, range, choice and help
text comes from the pydantic models, so a key added there appears here without UI work.

`validate(values, lang)` runs the same validation as `lora-scripts train` (each section's model, then
config.build_config for the checks across keys) and returns `{field: message}` instead of raising, so a page
can show each message next to its field before anything starts.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from ..config import build_config
from ..config.root import ALIASES, SECTIONS, key_to_section
from ..config.route import IMAGE_ONLY, IMAGE_SECTIONS, LLM_ONLY, LLM_SECTIONS
from ..errors import ConfigError
from .i18n import MESSAGES, t

# What a designer sets (the seed's keys); everything else is "advanced".
BASIC = (
    "base_model",
    "train_data_dir",
    "output_name",
    "output_dir",
    "resolution",
    "lora_rank",
    "lora_alpha",
    "epochs",
    "max_train_steps",
    "learning_rate",
    "batch_size",
    "trigger_word",
    "sample_prompts",
)
# Text keys that hold a file or folder (a path picker on the page); Path-typed keys are found by their type.
PATH_KEYS = {"base_model", "init_lora"}
FORM_SOURCE = "the form"


@dataclass(frozen=True)
class FormField:
    name: str
    section: str
    type: Literal["int", "float", "bool", "choice", "path", "text", "list"]
    default: Any
    required: bool
    help: str
    group: Literal["basic", "advanced"]
    route: Literal["image", "llm", "both"]
    choices: tuple[str, ...] = ()  # for "choice"; for int/float: words accepted besides a number ("auto")
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    step: float | None = None  # the value must be a multiple of this
    optional: bool = False  # empty is allowed (means the default described in the help)


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _kind(name: str, annotation: Any) -> tuple[str, tuple[str, ...], bool]:
    """(type, choices, optional) of a field from its annotation."""
    members = _members(annotation)
    optional = type(None) in members
    members = [m for m in members if m is not type(None)]
    literals = tuple(str(v) for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m))
    rest = [m for m in members if typing.get_origin(m) is not Literal]
    if not rest:
        return "choice", literals, optional
    first = rest[0]
    if typing.get_origin(first) is list:
        kind = "list"
    elif first is bool:
        kind = "bool"
    elif first is int:
        kind = "int"
    elif first is float:
        kind = "float"
    elif first is Path or name in PATH_KEYS:
        kind = "path"
    else:
        kind = "text"
    return kind, literals, optional


def _route(section: str, name: str) -> str:
    if section in IMAGE_SECTIONS or name in IMAGE_ONLY:
        return "image"
    if section in LLM_SECTIONS or name in LLM_ONLY:
        return "llm"
    return "both"


def _field(section: str, name: str, info: FieldInfo) -> FormField:
    kind, choices, optional = _kind(name, info.annotation)
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        if isinstance(item, at.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, at.Gt):
            bounds.update(min=item.gt, min_exclusive=True)
        elif isinstance(item, at.Le):
            bounds["max"] = item.le
        elif isinstance(item, at.Lt):
            bounds.update(max=item.lt, max_exclusive=True)
        elif isinstance(item, at.MultipleOf):
            bounds["step"] = item.multiple_of
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    return FormField(
        name=name,
        section=section,
        type=kind,  # type: ignore[arg-type]
        default=str(default) if isinstance(default, Path) else default,
        required=info.is_required(),
        help=info.description or "",
        group="basic" if name in BASIC else "advanced",
        route=_route(section, name),  # type: ignore[arg-type]
        choices=choices,
        optional=optional,
        **bounds,
    )


def form_fields() -> list[FormField]:
    """Every config key as a form field, section by section in the order the models declare them."""
    return [
        _field(section, name, info)
        for section, cls in SECTIONS.items()
        for name, info in cls.model_fields.items()
    ]


def label(field: FormField, lang: str = "en") -> str:
    """The field's label: its words in `lang` where the catalogue has them (the basic fields), else the
    config key."""
    key = f"field.{field.name}"
    return t(key, lang) if key in MESSAGES else field.name


def _number(value: Any) -> str:
    """1.0 -> '1', 0.0001 -> '0.0001': a limit as a designer would write it."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(err: dict[str, Any], lang: str) -> str:
    """One pydantic error as a sentence for the field it concerns."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return t("form.required", lang)
    if kind in ("float_parsing", "float_type", "finite_number"):
        return t("form.number", lang)
    if kind in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return t("form.whole_number", lang)
    if kind in ("bool_parsing", "bool_type"):
        return t("form.yes_no", lang)
    if kind == "literal_error":
        return t("form.choice", lang, choices=str(ctx.get("expected", "")).replace("'", ""))
    limits = {
        "greater_than_equal": ("form.min", "ge"),
        "greater_than": ("form.min_exclusive", "gt"),
        "less_than_equal": ("form.max", "le"),
        "less_than": ("form.max_exclusive", "lt"),
    }
    if kind in limits:
        key, bound = limits[kind]
        return t(key, lang, limit=_number(ctx.get(bound)))
    if kind == "multiple_of":
        return t("form.multiple_of", lang, step=_number(ctx.get("multiple_of")))
    if kind == "string_pattern_mismatch":
        return t("form.file_name", lang)
    return t("form.other", lang, detail=str(err.get("msg", "")).removeprefix("Value error, "))


def _named_field(text: str, names: typing.Iterable[str]) -> str:
    """The first config key a whole-config message names ('' when none: a message for the whole form)."""
    hits = [(m.start(), name) for name in names for m in [re.search(rf"\b{re.escape(name)}\b", text)] if m]
    return min(hits)[1] if hits else ""


def _union_message(errors: list[dict[str, Any]], lang: str) -> str:
    """A key that accepts a number or a word (batch_size: a number or `auto`): the range check if the value
    was a number, else the words it accepts."""
    for err in errors:
        if err["type"] == "value_error":
            return _message(err, lang)
    return " / ".join(dict.fromkeys(_message(e, lang) for e in errors))


def validate(values: dict[str, Any], lang: str = "en") -> dict[str, str]:
    """`{field: message}` for every problem in the form `values` (flat config keys; None or '' = not set);
    `{}` when `lora-scripts train` would accept them. A problem of the whole form comes under ''."""
    owners = key_to_section()
    errors: dict[str, str] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        name = ALIASES.get(key, key)
        if name not in owners:
            errors[key] = t("form.unknown_key", lang, key=key)
            continue
        sections.setdefault(owners[name], {})[name] = value
    sections.setdefault("model", {})
    for section, keys in sections.items():  # each section alone: every bad key gets its message at once
        try:
            SECTIONS[section](**keys)
        except ValidationError as exc:
            by_key: dict[str, list[dict[str, Any]]] = {}
            for err in exc.errors():
                key = str(err["loc"][0]) if err["loc"] else _named_field(str(err.get("msg", "")), keys)
                by_key.setdefault(key, []).append(err)
            for key, errs in by_key.items():
                union = any(len(e["loc"]) > 1 and isinstance(e["loc"][-1], str) for e in errs)
                errors.setdefault(key, _union_message(errs, lang) if union else _message(errs[0], lang))
    if errors:
        return errors
    try:  # the checks across sections and routes, exactly as the CLI makes them
        build_config({k: v for keys in sections.values() for k, v in keys.items()}, source=FORM_SOURCE)
    except ConfigError as exc:
        return {_named_field(exc.message, owners): t("form.other", lang, detail=exc.message)}
    return {}
