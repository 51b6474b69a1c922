"""The catalogue file (CSV or JSONL) -> items; the job's templates -> one PromptSpec per (item, n)."""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import re
import string
from dataclasses import dataclass, replace
from pathlib import Path

from ..data.captions import CSV_HINT
from ..data.textfile import EncodingNotes, read_text_file
from ..errors import ConfigError, DataError
from ..generate.prompts import LoraRef, PromptSpec, parse_prompt
from .config import JobConfig

UNSAFE = re.compile(r"[^\w.-]+")
NOTHING = {"", "nan", "none", "null"}  # a cell's value (stripped, lower case) that stands for no value
CLOSE = 0.8  # difflib ratio (case ignored) above which an `overrides` key that matches no value is its typo:
# 'laptp'/'laptop' and 'phones'/'phone' 0.91 are typos; 'headphone'/'phone' 0.71 is a category of its own


@dataclass(frozen=True)
class Item:
    row: int  # 1-based line of the file (CSV: the header is line 1)
    id: str
    values: dict[str, str]


@dataclass(frozen=True)
class Work:
    """One image to make: item `id`, image number `n`, its spec and its file under output_dir."""

    id: str
    n: int
    spec: PromptSpec
    file: str
    category: str


def read_items(
    path: Path, id_column: str, notes: EncodingNotes | None = None
) -> tuple[list[Item], list[str]]:
    """The rows and the column names; an unreadable or empty file, a missing id column or a repeated id is an
    error. Read as training reads metadata.csv: UTF-8, or GB18030/GBK as Excel on Chinese Windows saves a CSV
    (added to `notes`, for one line saying so)."""
    if not path.is_file():
        raise ConfigError(f"The items file '{path}' does not exist", "Check `items:` in the job file")
    decoded = read_text_file(path, "The items file", CSV_HINT)
    if notes is not None:
        notes.add("items file", path, decoded)
    text = decoded.text
    rows, columns = _jsonl(text, path) if path.suffix.lower() in (".jsonl", ".json") else _csv(text)
    if not rows:
        raise _no_rows(path, columns)
    if id_column not in columns:
        close = difflib.get_close_matches(id_column, columns, n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Columns: {', '.join(columns)}"
        raise ConfigError(f"The items file '{path}' has no id column '{id_column}'", hint)
    items, seen = [], {}
    for line, values in rows:
        item_id = str(values.get(id_column) or "").strip()
        if not item_id:
            raise DataError(f"Line {line} of '{path}' has an empty '{id_column}'", "Give every row an id")
        if item_id in seen:
            raise DataError(
                f"The id '{item_id}' appears twice in '{path}' (lines {seen[item_id]} and {line})",
                "Make every id unique",
            )
        seen[item_id] = line
        items.append(Item(line, item_id, values))
    return items, columns


def _no_rows(path: Path, columns: list[str]) -> DataError:
    """A catalogue without a single item: an export that lost its rows, not a job with nothing left to do."""
    what = f"The catalogue '{path}' has no rows"
    if path.suffix.lower() in (".jsonl", ".json"):
        return DataError(what, 'Add one line {"id": ...} per device model')
    if columns:
        return DataError(what, "Add one row per device model under the header")
    return DataError(
        f"The catalogue '{path}' is empty",
        "Add a header line (e.g. id,brand,model,category,colour) and one row per device model",
    )


def _csv(text: str) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    reader = csv.DictReader(text.splitlines())
    # a short row's missing cells (None) are left out: plan_item names them missing
    rows = [(i + 2, {k: v for k, v in row.items() if None not in (k, v)}) for i, row in enumerate(reader)]
    return rows, list(reader.fieldnames or [])


def _jsonl(text: str, path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    rows, columns = [], {}
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise DataError(f"Line {i} of '{path}' is not a JSON object", 'Write one {"id": ...} per line')
        rows.append((i, {str(k): "" if v is None else str(v) for k, v in value.items()}))
        columns.update(dict.fromkeys(rows[-1][1]))
    return rows, list(columns)


def template_fields(template: str, where: str) -> list[str]:
    """The {column} names of a template; only plain names are allowed (no {a.b}, {a[0]}, {a:>5})."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"The template {where} is not valid ({exc})", "Write {column}; {{ for a brace"
        ) from None
    names = [name for _, name, spec, conv in parsed if name is not None]
    for _, name, spec, conv in parsed:
        if name is not None and (not name.isidentifier() or spec or conv):
            raise ConfigError(f"'{{{name}}}' in the template {where} is not a column name", "Write {column}")
    return names


def check_columns(job: JobConfig, columns: list[str]) -> None:
    """Every template's columns (and `by`) exist in the file: else no item could be made."""
    needed = [(job.by, "`by`")] if job.by else []
    for label, template in _templates(job):
        needed += [(name, label) for name in template_fields(template, label)]
    for name, label in needed:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f"Did you mean '{close[0]}'?" if close else f"Columns: {', '.join(columns)}"
            raise ConfigError(f"{label} uses the column '{name}', which the items file does not have", hint)


def check_overrides(job: JobConfig, items: list[Item]) -> list[str]:
    """`overrides` keys are compared with the values of the `by` column, as a typo is not silently ignored: a
    key that matches no value but is close to one ('laptp', 'Laptop', 'lap top' for 'laptop') is an error with
    a did-you-mean; the keys close to none (a category planned for later) are returned, for a warning."""
    if not job.by or not job.overrides:
        return []
    values = sorted({v for i in items if (v := i.values.get(job.by, "")).strip().lower() not in NOTHING})
    unused = []
    for key in job.overrides:
        if key in values:
            continue
        close = _closest(key, values)
        if close is not None:
            raise ConfigError(
                f"overrides key '{key}' matches no value of column '{job.by}'; did you mean '{close}'?"
            )
        unused.append(key)
    return unused


def _closest(key: str, values: list[str]) -> str | None:
    """The value `key` is a typo of: equal ignoring case and spaces, else the closest one above CLOSE."""
    same = [v for v in values if "".join(v.split()).casefold() == "".join(key.split()).casefold()]
    if same:
        return same[0]
    folded = {v.strip().casefold(): v for v in values}
    close = difflib.get_close_matches(key.strip().casefold(), list(folded), n=1, cutoff=CLOSE)
    return folded[close[0]] if close else None


def _templates(job: JobConfig) -> list[tuple[str, str]]:
    out = [("`prompt`", job.prompt), ("`negative_prompt`", job.negative_prompt)]
    for key, o in job.overrides.items():
        out += [
            (f"`overrides.{key}.{f}`", t)
            for f, t in (("prompt", o.prompt), ("negative_prompt", o.negative_prompt))
            if t
        ]
    return out


def derive_seed(job_seed: int, item_id: str, n: int) -> int:
    """Each image's seed from (job seed, id, n) alone, so any image can be made again by itself."""
    return int.from_bytes(hashlib.sha256(f"{job_seed}\0{item_id}\0{n}".encode()).digest()[:4], "little")


def folder_of(item: Item, job: JobConfig) -> str:
    """images/<category> when `by` is set, else the id's first two letters (10k files in one folder hurt)."""
    name = item.values.get(job.by, "") if job.by else item.id[:2]
    return UNSAFE.sub("_", name).strip("._") or "_"


def plan_item(item: Item, job: JobConfig) -> list[Work]:
    """The item's images; a value that is missing, empty or holds a LoRA tag: DataError (-> failed.csv)."""
    if job.by:
        check_value(item, job.by)
    override = job.overrides.get(item.values[job.by]) if job.by else None
    template = (override.prompt if override and override.prompt else None) or job.prompt
    negative = override.negative_prompt if override and override.negative_prompt is not None else None
    negative = job.negative_prompt if negative is None else negative
    for name in template_fields(template, "`prompt`") + template_fields(negative, "`negative_prompt`"):
        check_value(item, name)
        if "<" in item.values[name]:
            raise DataError(f"the column '{name}' holds a '<' (LoRA tags belong in the job file)")
    spec = PromptSpec.from_text(
        template.format_map(item.values),
        negative_prompt=negative.format_map(item.values),
        steps=job.steps,
        cfg_scale=job.cfg,
        width=job.width,
        height=job.height,
        sampler=job.sampler,
    )
    spec = add_loras(spec, {**job.loras, **(override.loras if override else {})})
    stem = f"{folder_of(item, job)}/{UNSAFE.sub('_', item.id)}"
    return [
        Work(
            item.id,
            n,
            replace(spec, seed=derive_seed(job.seed, item.id, n)),
            f"images/{stem}_{n}.png",
            item.values[job.by] if job.by else "",
        )
        for n in range(job.images_per_item)
    ]


def check_value(item: Item, name: str) -> None:
    """A cell a template or `by` uses must hold a value: not missing (a short CSV row, a JSONL line without
    the key), not blank, not a stand-in for nothing (NaN, None, null: what spreadsheets and pandas write)."""
    if name not in item.values:
        raise DataError(f"the column '{name}' is missing for item '{item.id}'")
    if item.values[name].strip().lower() in NOTHING:
        raise DataError(f"the column '{name}' is empty for item '{item.id}'")


def add_loras(spec: PromptSpec, loras: dict[str, float]) -> PromptSpec:
    names = {r.name for r in spec.loras}
    for name in loras:
        if lora_name(name) in names:
            raise ConfigError(
                f"The LoRA '{name}' is both in a prompt tag and in `loras`", "Keep it in one place"
            )
    extra = tuple(LoraRef(lora_name(n), w) for n, w in loras.items())
    return replace(spec, loras=spec.loras + extra)


def lora_name(name_or_path: str) -> str:
    """`loras:` may name a file by path: its tag name is the file's stem."""
    return Path(name_or_path).stem if name_or_path.endswith(".safetensors") else name_or_path


def lora_tags(spec: PromptSpec) -> str:
    """index.csv's `loras`: every LoRA of the image as a tag."""
    return " ".join(r.tag() for r in spec.loras)


def mix_of(spec: PromptSpec) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((r.name, r.weight) for r in spec.loras if r.weight != 0))


def template_mixes(job: JobConfig) -> set[tuple[tuple[str, float], ...]]:
    """The LoRA mixes the job file allows (column values cannot add tags): one mix -> fuse once."""
    mixes = set()
    for o in [None, *job.overrides.values()]:
        template = (o.prompt if o and o.prompt else None) or job.prompt
        refs = tuple(parse_prompt(template)[1])
        spec = add_loras(PromptSpec("", refs), {**job.loras, **(o.loras if o else {})})
        mixes.add(mix_of(spec))
    return mixes
