"""The pieces of the kohya table (config/kohya.py): how one kohya key becomes ours, is accepted as a no-op,
or is refused. A rule sees the key's value and every key the config gives (`given`, as written), never
mutates them, and returns our keys plus at most one note for the log."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Given = Mapping[str, Any]
Outcome = tuple[dict[str, Any], str]  # our keys -> values, and a note for the log ("" for none)


class Refused(Exception):
    """A kohya setting this trainer cannot honour. `what` completes "Key 'k' in cfg.toml ..." as one sentence
    that names our equivalent; `hint` says what to write instead. `key` names another key than the rule's own
    (an entry of network_args found while reading network_module)."""

    def __init__(self, what: str, hint: str, key: str | None = None):
        super().__init__(what)
        self.what, self.hint, self.key = what, hint, key


@dataclass(frozen=True)
class Rule:
    kind: str  # "translated", "no-op" or "refused" (refused unless at its off value): the docs' column
    doc: str  # what it becomes here, or why it is accepted or refused (one line of docs/config.md)
    apply: Callable[[Any, Given], Outcome]


def off(value: Any) -> bool:
    """kohya's "not set": None, false, 0, an empty string or list, and their spellings in the GUI's JSON."""
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)):
        return value == 0
    if isinstance(value, str):
        text = value.strip().strip("\"'").lower()
        return text in ("", "false", "none") or _zero(text)
    return isinstance(value, (list, tuple, dict)) and not value


def _zero(text: str) -> bool:
    try:
        return float(text) == 0
    except ValueError:
        return False


def gui_config(given: Given) -> bool:
    """A kohya_ss GUI config (its saved JSON): LoRA_type is the GUI's own key; some zeros mean otherwise."""
    return "LoRA_type" in given


def same(value: Any, other: Any) -> bool:
    """Equal as numbers when both read as one ("1" and 1.0), else as text in any letter case."""
    try:
        return float(value) == float(other)
    except (TypeError, ValueError):
        return str(value).strip().strip("\"'").lower() == str(other).lower()


def on(given: Given, key: str) -> bool:
    return key in given and not off(given[key])


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def to(ours: str, convert: Callable[[Any], Any] | None = None, doc: str = "", skip_off: bool = False) -> Rule:
    """The same setting under our name (`convert` rewrites the value; its ValueError says what it must be)."""

    def apply(value, _given):
        if skip_off and off(value):
            return {}, ""
        return {ours: convert(value) if convert else value}, ""

    return Rule("translated", doc or f"`{ours}`", apply)


def noop(why: str) -> Rule:
    """Accepted, and logged when set (not at its off value): this trainer already does what the key asks."""
    return Rule("no-op", why, lambda value, _given: ({}, "" if off(value) else why))


def quiet(why: str) -> Rule:
    """Accepted without a log line: the kohya_ss GUI's own bookkeeping, which asks nothing of training."""
    return Rule("no-op", why, lambda _value, _given: ({}, ""))


def refused(why: str, fix: str, also_off: tuple[Any, ...] = ()) -> Rule:
    """Accepted at its off value (kohya's default, which asks for nothing; `also_off` adds values such as
    LyCORIS's factor -1); any other value is refused with `why` (naming our equivalent) and `fix`."""

    def apply(value, _given):
        if off(value) or any(same(value, v) for v in also_off):
            return {}, ""
        raise Refused(f"is {shown(value)}, but {why}", fix)

    return Rule("refused", f"{why}; {fix[0].lower()}{fix[1:]}", apply)


def when(
    condition: Callable[[Any, Given], bool], rule: Rule, otherwise: Rule, doc: str, kind: str = ""
) -> Rule:
    """`rule` where `condition(value, given)` holds, else `otherwise` (kohya keys whose meaning depends on
    another key, such as the GUI's noise_offset_type)."""

    def apply(value, given):
        return (rule if condition(value, given) else otherwise).apply(value, given)

    return Rule(kind or rule.kind, doc, apply)
