"""Crash and resume with real processes: kill -9 mid-run, Ctrl-C, and a killed rank of a 2-process run. The
resumed job's images are byte-identical to an unbroken run's and every (id, n) is in index.csv once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from batch_helpers import assert_same_images, index_rows, progress_events, recorded, start, wait_for


@pytest.mark.slow
def test_ctrl_c_then_kill_9_then_resume_equals_an_unbroken_run(crash_job, tmp_path):
    job, out = crash_job

    proc = start(job)  # Ctrl-C: the batch being made is finished and recorded, then exit 130
    wait_for(lambda: recorded(out) >= 2, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Stopped by the user" in stderr and "Traceback" not in stderr
    rows = index_rows(out)  # the finish step ran: the parts merged into index.csv, the contact sheet written
    stopped = len(rows)
    assert stopped % 2 == 0 and 2 <= stopped < 24 and recorded(out) == 0  # whole batches only
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")) == sorted(
        r["file"] for r in rows
    )
    sheet = (out / "index.html").read_text(encoding="utf-8")
    assert sheet.count("<figure") == stopped and all(f'href="{r["file"]}"' in sheet for r in rows)
    events = progress_events(out)
    assert events[-1]["event"] == "end" and events[-1]["state"] == "stopped"

    proc = start(job)  # kill -9 (no handler, no cleanup) in the middle of the rest
    wait_for(lambda: recorded(out) >= 4, proc)  # its parts: this run's images (index.csv: the stopped run's)
    proc.kill()
    proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    assert 4 <= recorded(out) < 24 - stopped, "killed after the end: nothing to resume"

    again = subprocess.run([sys.executable, "-m", "lora_scripts.cli", "batch", str(job)], capture_output=True)
    assert again.returncode == 0, again.stderr
    assert_same_images(out, tmp_path / "reference", 24)
    kept = [p for p, t in done_before.items() if p.stat().st_mtime_ns == t]
    assert len(kept) >= stopped + 4  # the finished images were not made again
    assert not list(out.rglob("*.tmp*"))


@pytest.mark.slow
def test_two_processes_equal_one_and_a_killed_rank_resumes(crash_job, tmp_path):
    job, out = crash_job
    # Ctrl-C in the terminal: SIGINT to the launcher and both ranks (one process group); each rank finishes
    # its batch, they meet, rank 0 merges the parts and writes the contact sheet, and the command exits 130
    proc = start(job, "--processes", "2", new_session=True)
    wait_for(lambda: recorded(out) >= 2, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    rows = index_rows(out)
    assert 2 <= len(rows) < 24 and recorded(out) == 0  # merged, no parts left
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")) == sorted(
        r["file"] for r in rows
    )
    assert (out / "index.html").read_text(encoding="utf-8").count("<figure") == len(rows)

    proc = start(job, "--processes", "2")

    def ranks() -> dict[int, int]:
        return {e["rank"]: e["pid"] for e in progress_events(out) if e["event"] == "start"}

    wait_for(lambda: len(ranks()) == 2 and len(list((out / "parts").glob("index-*.csv"))) == 2, proc)
    os.kill(ranks()[1], signal.SIGKILL)  # one rank dies; the launcher stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and recorded(out) < 24
    finished = len(rows) + recorded(out)  # the stopped run's, merged, and this run's parts

    parts = sorted(p.name for p in (out / "parts").glob("index-*.csv"))
    assert parts == ["index-0.csv", "index-1.csv"]  # both ranks had recorded images

    again = subprocess.run([sys.executable, "-m", "lora_scripts.cli", "batch", str(job)], capture_output=True)
    assert again.returncode == 0, again.stderr  # resumed by one process: the parts are merged
    assert_same_images(out, tmp_path / "reference", 24)
    events = progress_events(out)
    assert [e for e in events if e["event"] == "start"][-1]["done"] == finished  # nothing finished redone
