"""Helpers of the crash, shard and Ray tests: a catalogue of n rows, the job's index and parts, the
comparison with an unbroken run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

KEYS = {"images_per_item": 2, "batch_size": 2, "steps": 6, "width": 64, "height": 64}


def catalogue(count: int) -> list[dict]:
    colours = ["black", "white", "blue", "green"]
    return [
        {
            "id": f"DEV-{i:03d}",
            "brand": "Brand",
            "model": f"Model {i}",
            "category": "phone",
            "colour": colours[i % 4],
        }
        for i in range(count)
    ]


def index_rows(out: Path) -> list[dict]:
    with open(out / "index.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def recorded(out: Path) -> int:
    """Rows the running job has recorded so far (its index parts)."""
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in (out / "parts").glob("index-*.csv"))


def progress_events(out: Path) -> list[dict]:
    path = out / "progress.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_same_images(out: Path, reference: Path, total: int) -> None:
    rows, ref = index_rows(out), index_rows(reference)
    assert len(rows) == total and len({(r["id"], r["n"]) for r in rows}) == total  # each (id, n) once
    assert [(r["id"], r["n"], r["sha256"]) for r in rows] == [(r["id"], r["n"], r["sha256"]) for r in ref]
    for r in ref:
        assert (out / r["file"]).read_bytes() == (reference / r["file"]).read_bytes()
