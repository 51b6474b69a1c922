"""index.csv and failed.csv, exactly once per (id, n) across crashes and processes.

Each process appends its rows to its own part (`parts/index-<rank>.csv`, one flushed and fsynced line per
image, written only after the image file is complete); the parts are merged into index.csv at the end and at
the start of a single-process run. A line cut off by a kill is dropped (its image is made again).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..save.atomic import replacing

FIELDS = ["id", "n", "seed", "prompt", "loras", "file", "sha256", "seconds"]
FAILED = ["id", "n", "reason"]
Key = tuple[str, int]


class Ledger:
    def __init__(self, out: Path, rank: int = 0):
        self.out, self.rank = out, rank
        self.parts = out / "parts"

    def done(self) -> dict[Key, dict]:
        """Every finished image: index.csv and all parts (a later duplicate of a key is ignored)."""
        rows: dict[Key, dict] = {}
        for path in [self.out / "index.csv", *sorted(self.parts.glob("index-*.csv"))]:
            for row in _read(path, FIELDS):
                rows.setdefault((row["id"], int(row["n"])), row)
        return rows

    def record(self, row: dict) -> None:
        _append(self.parts / f"index-{self.rank}.csv", FIELDS, row)

    def fail(self, item_id: str, n: int, reason: str) -> None:
        _append(self.parts / f"failed-{self.rank}.csv", FAILED, {"id": item_id, "n": n, "reason": reason})

    def merge(self, order: dict[Key, int]) -> tuple[int, int]:
        """Write index.csv and failed.csv from everything recorded (in item order), then drop the parts."""
        done = self.done()
        failed: dict[Key, dict] = {}
        for path in [self.out / "failed.csv", *sorted(self.parts.glob("failed-*.csv"))]:
            for row in _read(path, FAILED):
                key = (row["id"], int(row["n"]))
                if key not in done:
                    failed[key] = row  # the latest reason wins
        last = len(order)
        _write(self.out / "index.csv", FIELDS, sorted(done.values(), key=lambda r: _rank(r, order, last)))
        _write(self.out / "failed.csv", FAILED, sorted(failed.values(), key=lambda r: _rank(r, order, last)))
        for part in self.parts.glob("*.csv"):
            part.unlink()
        return len(done), len(failed)


def _rank(row: dict, order: dict[Key, int], last: int) -> tuple:
    return (order.get((row["id"], int(row["n"])), last), row["id"], int(row["n"]))


def _read(path: Path, fields: list[str]) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # cut off by a kill: not recorded
    rows = []
    for row in csv.DictReader(lines):
        if row.get(fields[-1]) is not None and None not in row and row.get("n", "").isdigit():
            rows.append(row)
    return rows


def _append(path: Path, fields: list[str], row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a+", encoding="utf-8", newline="") as handle:
        handle.seek(0, os.SEEK_END)
        if not new and handle.tell():
            handle.seek(handle.tell() - 1)
            if handle.read(1) != "\n":  # a line cut off by a kill: end it, _read drops it
                handle.write("\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.write(buffer.getvalue())  # one write: the line is whole or cut, never interleaved
        handle.flush()
        os.fsync(handle.fileno())


def _write(path: Path, fields: list[str], rows: list[dict]) -> None:
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
