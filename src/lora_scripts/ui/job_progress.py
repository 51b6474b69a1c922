"""What the Jobs page shows of each job, read from facts only: its progress events (done / total / ETA;
lora_scripts/progress.py) and, for a failed job, the kind of error its stage ended with, said in the page's
language (the error's own sentence, English, follows as the detail)."""

from __future__ import annotations

from pathlib import Path

from ..errors_zh import hint_zh
from ..progress import FILE_NAME, read_progress
from .i18n import t
from .jobs import FAILED, RUNNING

ERROR_FAMILIES = ("ConfigError", "DataError", "ModelError", "FormatError", "OutputError", "TrainingError")


def stage_events(job_dir: Path) -> list[dict]:
    """The progress events of a label / doctor / generate / tool job (written to its job folder)."""
    return read_progress(job_dir / FILE_NAME)


def stage_bar(job: dict, events: list[dict]) -> dict:
    """{done, total, eta_s} of a non-training job from its last event (total None: not started yet)."""
    last = events[-1] if events else {}
    return {
        "done": last.get("done", 0),
        "total": last.get("total"),
        "eta_s": last.get("eta_s") if job["status"] == RUNNING else None,
    }


def train_bar(progress: dict) -> dict:
    """The same three facts of a training, from its progress (api_train.train_progress)."""
    return {"done": progress.get("step", 0), "total": progress.get("total"), "eta_s": progress.get("eta_s")}


def failure(job: dict, events: list[dict], log_tail: str, lang: str) -> str:
    """Why a failed job failed, in `lang`: the kind of problem (the error family of the stage's end event)
    with the error's sentence; the doctor's own stop (it found errors) in words; else the log's last line."""
    if job["status"] != FAILED:
        return ""
    end = next((e for e in reversed(events) if e.get("event") == "end"), None)
    lines = [line for line in log_tail.splitlines() if line.strip()]
    detail = lines[-1].strip() if lines else ""
    if end is None:
        return t("failed.unknown", lang, detail=detail) if detail else t("failed.no_log", lang)
    if end.get("state") == "done":  # the stage itself finished: the doctor stopped on what it found
        key = "failed.doctor_findings" if job["kind"] == "doctor" else "failed.unknown"
        return t(key, lang, detail=detail)
    family = end.get("error", "")
    key = f"failed.{family}" if family in ERROR_FAMILIES else "failed.bug"
    message = end.get("message") or detail
    hint = hint_zh(message) if lang == "zh" and family in ERROR_FAMILIES else None
    return t(key, lang, detail=message) + (t("failed.hint", lang, hint=hint) if hint else "")
