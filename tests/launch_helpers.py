"""A `lora-scripts train --processes 2` run in the background and its ranks (accelerate's launcher starts
them as its children, each with RANK=... in its environment): shared by the image and LLM data-parallel
tests that kill or stop one process mid-run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def rank_pid(launcher: int, rank: int) -> int | None:
    """The worker process of `rank` under the launcher (its environment says RANK=...)."""
    for pid in children(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


def start_and_wait_for_state(cfg, out, step: int = 2) -> subprocess.Popen:
    """A 2-process training started in the background, once its training state of `step` is written."""
    state = out / "state" / f"step-{step:06d}" / "position.json"
    return start_and_wait_for(cfg, state.exists)


def start_and_wait_for(cfg, ready) -> subprocess.Popen:
    """A 2-process training started in the background, once `ready()` says so."""
    command = [sys.executable, "-m", "lora_scripts.cli", "train", "-c", str(cfg), "--processes", "2"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ready() and run.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert ready(), run.stderr.read() if run.poll() is not None else "not ready in 300 s"
    return run
