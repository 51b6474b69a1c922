"""What an SVD step kept, per module group and overall (data and a rich table); progress for long loops."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import track
from rich.table import Table

from ..console import console
from .family import group_of
from .inspect_lora import GROUP_ORDER
from .lowrank import Kept

T = TypeVar("T")


def progress(items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on stderr, only when stderr is a terminal (no blank lines in logs)."""
    bar = track(items, description=what, total=total, console=console, transient=True)
    return iter(bar) if console.is_terminal else iter(items)


def overall(kept: dict[str, Kept]) -> float:
    """Fraction of the total delta energy kept, modules weighed by their energy."""
    total = sum(k.total for k in kept.values())
    return sum(k.energy * k.total for k in kept.values()) / total if total > 0 else 1.0


def summarise(kept: dict[str, Kept]) -> list[dict]:
    """Per module group: modules, rank before -> after (min..max), kept energy (weighted, and the worst)."""
    groups: dict[str, dict[str, Kept]] = {}
    for name, k in kept.items():
        groups.setdefault(group_of(name), {})[name] = k
    order = {g: i for i, g in enumerate(GROUP_ORDER)}
    rows = []
    for group, members in sorted(groups.items(), key=lambda item: order.get(item[0], 99)):
        values = list(members.values())
        rows.append(
            {
                "group": group,
                "modules": len(values),
                "rank_in": _span(k.rank_in for k in values),
                "rank_out": _span(k.rank_out for k in values),
                "energy": overall(members),
                "worst": min(k.energy for k in values),
            }
        )
    return rows


def kept_table(kept: dict[str, Kept], title: str) -> Table:
    table = Table("group", "modules", "rank before", "rank after", "energy kept", "worst module", title=title)
    for row in summarise(kept):
        table.add_row(
            row["group"],
            str(row["modules"]),
            row["rank_in"],
            row["rank_out"],
            f"{row['energy']:.2%}",
            f"{row['worst']:.2%}",
        )
    table.add_row("all", str(len(kept)), "", "", f"{overall(kept):.2%}", "", style="bold")
    return table


def _span(values: Iterable[int]) -> str:
    values = list(values)
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"
