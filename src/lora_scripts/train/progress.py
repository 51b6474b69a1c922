"""Progress events: one JSON line per event in `<output_dir>/progress.jsonl`, so the web UI (and tests) read
facts (step, loss, lr, ETA, sample files, state) instead of parsing log text.

Events: {"event": "start", "step", "total"}, {"event": "step", "step", "total", "loss", "lr", "epoch",
"eta_s"}, {"event": "samples", "step", "files"}, {"event": "end", "step", "state": "done"|"stopped"}.
Each line is written and flushed whole; a resumed run appends to the same file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

FILE_NAME = "progress.jsonl"


class ProgressLog:
    def __init__(self, out_dir: Path, enabled: bool = True):
        self.path = out_dir / FILE_NAME
        self.enabled = enabled
        self._first: tuple[float, int] | None = None  # (time, step) of the first step of this process

    def event(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def step(self, step: int, total: int, loss: float, lr: float, epoch: int) -> None:
        now = time.time()
        if self._first is None:
            self._first = (now, step)
        first_time, first_step = self._first
        done = step - first_step
        eta = (now - first_time) / done * (total - step) if done > 0 else None
        self.event(
            "step",
            step=step,
            total=total,
            loss=round(loss, 6),
            lr=lr,
            epoch=epoch,
            eta_s=None if eta is None else round(eta, 1),
        )

    def samples(self, step: int, folder: Path) -> None:
        files = sorted(p.name for p in folder.glob(f"step{step:06d}-*.png"))
        if files:
            self.event("samples", step=step, files=files)


def read_progress(path: Path) -> list[dict]:
    """The events in `path` (a missing file: none; a half-written last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
