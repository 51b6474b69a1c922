"""index.csv and failed.csv, exactly once per (id, n) across crashes and processes.

Each process appends its rows to its own part (`parts/index-<rank>.csv`, one flushed and fsynced line per
image, written only after the image file is complete); the parts are merged into index.csv at the end and at
the start of a single-process run. A line cut off by a kill is dropped (its image is made again).

On an object store (no append) each batch's rows are one new object, `parts/index-<rank>-<time>-<random>.csv`,
written whole by one PUT after the batch's images: a kill leaves a batch recorded or not, and an object once
written never changes, so each part is read once however often done() is asked (Ray asks before every batch).
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import time
from pathlib import Path

from ..save.atomic import replacing

FIELDS = ["id", "n", "seed", "prompt", "loras", "file", "sha256", "seconds"]
FAILED = ["id", "n", "reason"]
Key = tuple[str, int]


class _Index:
    """done() and merge() over the texts of index.csv / failed.csv and of the parts; the subclasses say where
    those are (_texts), how a file is written whole (_write) and how merged parts go (_drop)."""

    def done(self) -> dict[Key, dict]:
        """Every finished image: index.csv and all parts (a later duplicate of a key is ignored)."""
        return _done(self._texts("index")[0])

    def merge(self, order: dict[Key, int]) -> tuple[int, int]:
        """Write index.csv and failed.csv from everything recorded (in item order), then drop the parts."""
        self.commit()
        texts, parts = self._texts("index")
        done = _done(texts)
        failed: dict[Key, dict] = {}
        texts, failed_parts = self._texts("failed")
        for text in texts:
            for row in _parse(text, FAILED):
                key = (row["id"], int(row["n"]))
                if key not in done:
                    failed[key] = row  # the latest reason wins
        last = len(order)
        self._write("index.csv", FIELDS, sorted(done.values(), key=lambda r: _rank(r, order, last)))
        self._write("failed.csv", FAILED, sorted(failed.values(), key=lambda r: _rank(r, order, last)))
        self._drop(parts + failed_parts)
        return len(done), len(failed)


class Ledger(_Index):
    """A local folder: each row appended to this process's part file and fsynced when recorded."""

    def __init__(self, out: Path, rank: int | str = 0):
        self.out, self.rank = out, rank
        self.parts = out / "parts"

    def _texts(self, kind: str) -> tuple[list[str], list[Path]]:
        parts = sorted(self.parts.glob(f"{kind}-*.csv"))
        return [_read_text(path) for path in [self.out / f"{kind}.csv", *parts]], parts

    def record(self, row: dict) -> None:
        _append(self.parts / f"index-{self.rank}.csv", FIELDS, row)

    def fail(self, item_id: str, n: int, reason: str) -> None:
        _append(self.parts / f"failed-{self.rank}.csv", FAILED, {"id": item_id, "n": n, "reason": reason})

    def commit(self) -> None:
        """Nothing: each row was appended and fsynced when recorded."""

    def _write(self, name: str, fields: list[str], rows: list[dict]) -> None:
        with replacing(self.out / name) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(_text(fields, rows))

    def _drop(self, parts: list[Path]) -> None:
        for part in self.parts.glob("*.csv"):
            part.unlink()


def _done(texts: list[str]) -> dict[Key, dict]:
    rows: dict[Key, dict] = {}
    for text in texts:
        for row in _parse(text, FIELDS):
            rows.setdefault((row["id"], int(row["n"])), row)
    return rows


def _rank(row: dict, order: dict[Key, int], last: int) -> tuple:
    return (order.get((row["id"], int(row["n"])), last), row["id"], int(row["n"]))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _parse(text: str, fields: list[str]) -> list[dict]:
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
            if handle.read(1) != "\n":  # a line cut off by a kill: end it, _parse drops it
                handle.write("\n")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.write(buffer.getvalue())  # one write: the line is whole or cut, never interleaved
        handle.flush()
        os.fsync(handle.fileno())


class ObjectLedger(_Index):
    """The index on an fsspec location (store.ObjectOutput): rows buffered, one part object per commit."""

    def __init__(self, out, rank: int | str = 0):
        self.out, self.rank = out, rank
        self.pending: dict[str, list[dict]] = {"index": [], "failed": []}
        self.seen: dict[str, str] = {}  # part -> its text (parts never change)

    def _texts(self, kind: str) -> tuple[list[str], list[str]]:
        """(the texts of <kind>.csv and of every part, the parts' names)."""
        parts = self.out.glob(f"parts/{kind}-*.csv")
        self.seen.update(self.out.read_many([p for p in parts if p not in self.seen]))
        return [self.out.read_text(f"{kind}.csv") or "", *(self.seen[p] for p in parts)], parts

    def record(self, row: dict) -> None:
        self.pending["index"].append(row)

    def fail(self, item_id: str, n: int, reason: str) -> None:
        self.pending["failed"].append({"id": item_id, "n": n, "reason": reason})

    def commit(self) -> None:
        """The rows recorded since the last commit, as one new object per kind (after their images)."""
        for kind, fields in (("index", FIELDS), ("failed", FAILED)):
            if self.pending[kind]:
                name = f"parts/{kind}-{self.rank}-{time.time_ns():x}-{secrets.token_hex(3)}.csv"
                self.out.write_text(name, _text(fields, self.pending[kind]))
                self.pending[kind] = []

    def _write(self, name: str, fields: list[str], rows: list[dict]) -> None:
        self.out.write_text(name, _text(fields, rows))  # one PUT: the old index or the whole new one

    def _drop(self, parts: list[str]) -> None:
        """Only the parts that were read (a crash before this leaves rows twice, which done() reads once)."""
        self.out.remove(parts)


def _text(fields: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def open_ledger(out, rank: int | str = 0) -> Ledger | ObjectLedger:
    """The ledger for a job's output (store.py): a local folder's appended parts or an object store's."""
    return ObjectLedger(out, rank) if out.remote else Ledger(out.root, rank)
