"""Progress events of every long stage (training, label, doctor, generate, tools, batch), below them all in
the layers: one JSON line per event in `<output_dir>/progress.jsonl`, so the web UI (and tests) read
facts (step, loss, lr, ETA, sample files, state) instead of parsing log text.

Events: {"event": "start", "step", "total"}, {"event": "step", "step", "total", "loss", "lr", "epoch",
"eta_s"; with scale_weight_norms also kohya's "max_norm/keys_scaled", "norm/avg_key_norm",
"max_norm/max_key_norm"}, {"event": "samples", "step", "files"},
{"event": "end", "step", "state": "done"|"stopped"}.
Each line is written and flushed whole; a resumed run appends to the same file.

The other long stages (label, doctor, generate, the LoRA tools) write the same kind of file through
`stage_progress`, to the path in the environment variable LORA_SCRIPTS_PROGRESS (the web UI sets it to the
job's folder; without it they write nothing): {"event": "start", "stage", "done": 0, "total"},
{"event": "progress", "done", "total", "eta_s"}, {"event": "end", "state": "done"|"failed"|"stopped",
"error": the error's class (e.g. "DataError"), "message": its sentence}.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

FILE_NAME = "progress.jsonl"
PROGRESS_ENV = "LORA_SCRIPTS_PROGRESS"
MIN_INTERVAL_S = 0.25  # a stage's progress lines at most this often (the last one always)


class ProgressLog:
    def __init__(self, out_dir: Path, enabled: bool = True, path: Path | None = None):
        self.path = path or out_dir / FILE_NAME
        self.enabled = enabled
        self._first: tuple[float, int] | None = None  # (time, step) of the first step of this process

    def event(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, "time": round(time.time(), 3), **fields}, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def step(self, step: int, total: int, loss: float, lr: float, epoch: int, **extra: float) -> None:
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
            **extra,
        )

    def samples(self, step: int, folder: Path) -> None:
        files = sorted(p.name for p in folder.glob(f"step{step:06d}-*.png"))
        if files:
            self.event("samples", step=step, files=files)


class StageProgress:
    """Done / total of a stage that is not training, as progress events (see the module's docstring)."""

    def __init__(self, stage: str, path: Path | None):
        self.log = ProgressLog(Path("."), enabled=path is not None, path=path)
        self.stage, self.done, self.total = stage, 0, 0
        self._started, self._written = time.time(), 0.0

    def begin(self, total: int) -> None:
        """The amount of work is known (images, batches, modules): a bar at 0 of `total`."""
        self.done, self.total, self._started = 0, total, time.time()
        self.log.event("start", stage=self.stage, done=0, total=total)

    def advance(self, n: int = 1) -> None:
        if n <= 0:
            return
        self.done += n
        now = time.time()
        if self.done < self.total and now - self._written < MIN_INTERVAL_S:
            return
        self._written = now
        eta = (now - self._started) / self.done * max(0, self.total - self.done) if self.done else None
        eta_s = None if eta is None else round(eta, 1)
        self.log.event("progress", done=self.done, total=self.total, eta_s=eta_s)

    def end(self, state: str, error: BaseException | None = None) -> None:
        fields = {"error": type(error).__name__, "message": str(error)} if error is not None else {}
        self.log.event("end", stage=self.stage, done=self.done, total=self.total, state=state, **fields)


@contextlib.contextmanager
def stage_progress(stage: str) -> Iterator[StageProgress]:
    """Progress events of one stage's run, ended "done", "stopped" (Ctrl-C) or "failed" with the error's
    class and sentence (so the UI can say in the page's language what kind of problem stopped it)."""
    path = os.environ.get(PROGRESS_ENV)
    progress = StageProgress(stage, Path(path) if path else None)
    try:
        yield progress
    except KeyboardInterrupt:
        progress.end("stopped")
        raise
    except Exception as err:  # a LoraScriptsError (one sentence) or a bug: the job failed
        progress.end("failed", err)
        raise
    progress.end("done")


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
