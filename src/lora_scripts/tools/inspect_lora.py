"""`lora inspect`: what a LoRA file is for, what it touches, and how it was trained (from its metadata)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ..inject.lora import KIND_NAMES, LoraWeights, network_kind
from ..inject.lyco import LycoWeights
from .family import group_of, kind_of
from .lora_io import LoraFile, read_lora

GROUP_ORDER = ("TE", "TE1", "TE2", "UNet down", "UNet mid", "UNet up", "other")
FACTS = (  # (label, metadata key)
    ("output name", "ss_output_name"),
    ("title", "modelspec.title"),
    ("trained on", "ss_sd_model_name"),
    ("base version", "ss_base_model_version"),
    ("network", "ss_network_module"),
    ("dim / alpha", "ss_network_dim"),
    ("network args", "ss_network_args"),
    ("steps", "ss_steps"),
    ("epochs", "ss_epoch"),
    ("training images", "ss_num_train_images"),
    ("resolution", "ss_resolution"),
    ("learning rate", "ss_learning_rate"),
    ("text-encoder lr", "ss_text_encoder_lr"),
    ("optimizer", "ss_optimizer"),
    ("scheduler", "ss_lr_scheduler"),
    ("batch size", "ss_batch_size_per_device"),
    ("mixed precision", "ss_mixed_precision"),
    ("started", "ss_training_started_at"),
    ("finished", "ss_training_finished_at"),
    ("comment", "ss_training_comment"),
    ("continued from", "ss_parent_lora"),
    ("parent hash", "ss_parent_lora_hash"),
    ("lineage", "ss_lineage"),
    ("model hash", "sshs_model_hash"),
)


def describe(path: Path, top: int = 15) -> dict:
    """Everything `inspect` shows, as plain data (also printed by `--json`)."""
    lora = read_lora(path, strict=False)
    family, how = lora.family()
    tags = tag_counts(lora.metadata)
    trigger, trigger_how = trigger_words(lora.metadata, tags)
    return {
        "file": str(path),
        "size_bytes": lora.size,
        "size": human_size(lora.size),
        "dtypes": sorted(lora.dtypes),
        "parameters": sum(_parameters(w) for w in lora.modules.values()),
        "network_types": dict(Counter(_network_type(w) for w in lora.modules.values()).most_common()),
        "family": family,
        "family_from": how,
        "modules": len(lora.modules),
        "groups": _groups(lora),
        "kinds": dict(Counter(kind_of(n, w) for n, w in lora.modules.items()).most_common()),
        "other_tensors": len(lora.other),
        "facts": _facts(lora.metadata),
        "trigger_words": trigger,
        "trigger_from": trigger_how,
        "top_tags": tags.most_common(top),
        "metadata_keys": len(lora.metadata),
    }


def _parameters(w: LoraWeights | LycoWeights) -> int:
    if isinstance(w, LycoWeights):
        return sum(t.numel() for t in w.tensors.values())
    extra = w.dora_scale.numel() if w.dora_scale is not None else 0
    return w.down.numel() + w.up.numel() + extra


def _network_type(w: LoraWeights | LycoWeights) -> str:
    return KIND_NAMES[network_kind(w)]


def _groups(lora: LoraFile) -> list[dict]:
    rows: dict[str, dict] = {}
    for name, w in lora.modules.items():
        row = rows.setdefault(group_of(name), {"modules": 0, "ranks": Counter(), "alphas": Counter()})
        row["modules"] += 1
        full = isinstance(w, LycoWeights) and w.dim is None  # a LoKr of full factors: no rank of its own
        row["ranks"]["full" if full else w.rank] += 1
        row["alphas"][_num(w.alpha)] += 1
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    return [
        {"group": g, "modules": r["modules"], "ranks": _spread(r["ranks"]), "alphas": _spread(r["alphas"])}
        for g, r in sorted(rows.items(), key=lambda item: order.get(item[0], 99))
    ]


def _spread(counts: Counter) -> str:
    """'4' when uniform, else '4 (x10), 8 (x2)'."""
    if len(counts) == 1:
        return str(next(iter(counts)))
    return ", ".join(f"{value} (x{n})" for value, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _facts(metadata: dict[str, str]) -> dict[str, str]:
    facts = {}
    for label, key in FACTS:
        value = metadata.get(key)
        if value in (None, "", "None", "{}"):
            continue
        if key == "ss_network_dim":
            value = f"{value} / {metadata.get('ss_network_alpha', '?')}"
        elif key.startswith("ss_training_") and key.endswith("_at"):
            value = _date(value)
        facts[label] = value
    return facts


def tag_counts(metadata: dict[str, str]) -> Counter:
    """ss_tag_frequency ({folder: {tag: count}}) summed over folders; empty when absent or malformed."""
    try:
        folders = json.loads(metadata.get("ss_tag_frequency", "{}"))
        return sum(
            (Counter({str(t): int(n) for t, n in tags.items()}) for tags in folders.values()), Counter()
        )
    except (ValueError, TypeError, AttributeError):
        return Counter()


def trigger_words(metadata: dict[str, str], tags: Counter) -> tuple[list[str], str]:
    """modelspec.trigger_phrase if set, else the tags found in every caption."""
    phrase = metadata.get("modelspec.trigger_phrase", "").strip()
    if phrase:
        return [p.strip() for p in phrase.split(",") if p.strip()], "modelspec.trigger_phrase"
    if not tags:
        return [], "no tag frequency in metadata"
    images = _image_count(metadata)
    threshold = images if images else max(tags.values())
    found = [t for t, n in tags.most_common() if n >= threshold]
    return found, f"tags in all {images} captions" if images else "most frequent tags"


def _image_count(metadata: dict[str, str]) -> int:
    try:
        dirs = json.loads(metadata.get("ss_dataset_dirs", "{}"))
        return sum(int(d.get("img_count", 0)) for d in dirs.values())
    except (ValueError, TypeError, AttributeError):
        return 0


def render(report: dict) -> Group:
    """Rich tables for the terminal."""
    head = Table(
        show_header=False, box=None, title=f"LoRA {escape(str(report['file']))}", title_justify="left"
    )
    head.add_row("base family", f"{report['family'] or 'unknown'} ({report['family_from']})")
    head.add_row("size", f"{report['size']}, {', '.join(report['dtypes'])}, {report['parameters']:,} params")
    touched = ", ".join(f"{k} {n}" for k, n in report["kinds"].items())
    head.add_row("modules", f"{report['modules']} ({touched})")
    head.add_row("network type", ", ".join(f"{k} {n}" for k, n in report["network_types"].items()))
    if report["other_tensors"]:
        head.add_row("other tensors", f"{report['other_tensors']} (not LoRA/LoHa/LoKr: DoRA?)")
    head.add_row("trigger words", escape(", ".join(report["trigger_words"])) or "-")  # [tags] are text
    groups = Table("group", "modules", "rank", "alpha", title="Rank / alpha per module group")
    for row in report["groups"]:
        groups.add_row(row["group"], str(row["modules"]), row["ranks"], row["alphas"])
    parts = [head, groups]
    if report["facts"]:
        facts = Table("training fact", "value", title="Metadata")
        for label, value in report["facts"].items():
            facts.add_row(label, escape(str(value)))
        parts.append(facts)
    if report["top_tags"]:
        tags = Table("tag", "count", title=f"Top {len(report['top_tags'])} tags")
        for tag, n in report["top_tags"]:
            tags.add_row(escape(tag), str(n))
        parts.append(tags)
    return Group(*parts)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _date(value: str) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(value)))
    except (ValueError, OverflowError):
        return value


def _num(value: float) -> str:
    return f"{value:g}"
