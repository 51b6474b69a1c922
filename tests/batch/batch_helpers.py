"""Helpers of the crash, shard and Ray tests: a catalogue of n rows, the job's index and parts, the
comparison with an unbroken run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
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


def download(fs, root: str, dest: Path) -> Path:
    """Everything under an fsspec location `root` (as the filesystem names it), copied into the folder `dest`,
    so a URI job's output is compared with the local helpers above."""
    fs.invalidate_cache()  # other processes wrote there since this one listed
    for path in fs.find(root):
        target = dest / path[len(root.rstrip("/")) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(fs.cat_file(path))
    return dest


def recorded_at(fs, root: str) -> int:
    """Rows a running job has recorded in the index part objects at an fsspec location."""
    fs.invalidate_cache()
    parts = fs.glob(f"{root}/parts/index-*.csv")
    return sum(max(0, len(fs.cat_file(p).decode().splitlines()) - 1) for p in parts)


def start(job: Path, *args: str, new_session: bool = False) -> subprocess.Popen:
    """The job in the background; `new_session`: in a process group of its own, as a terminal runs a
    command (Ctrl-C is then os.killpg(proc.pid, SIGINT): the command and its children)."""
    command = [sys.executable, "-m", "lora_scripts.cli", "batch", str(job), *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_session
    )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the job did not get there in time"
        time.sleep(0.02)
