"""Jobs: every long action (label, doctor, train, generate, LoRA tools) is the `lora-scripts` CLI run as a
separate process by ui/runner.py. A job's state lives in `workspace/jobs/<id>/` (job.json: command, status,
pid, times; log.txt; exit.json once the command ended), so jobs survive a restart of the UI: a job whose
runner is still alive is followed again, one whose runner is gone is marked by its exit code.

Trainings run one after another (a queue); other jobs start at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from ..files import replacing
from ..progress import FILE_NAME as PROGRESS_FILE
from ..progress import PROGRESS_ENV
from ..train.lock import pid_exists

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STOPPED, CANCELLED = "stopped", "cancelled"
ACTIVE = (QUEUED, RUNNING)
STOPPED_CODES = (130, -signal.SIGTERM, -signal.SIGINT)  # the CLI's graceful stop, or killed by the signal
SERIAL_KINDS = ("train",)  # jobs of these kinds wait for the previous one


def cli(*args: str) -> list[str]:
    """The `lora-scripts` command line with `args`, run by this Python."""
    return [sys.executable, "-m", "lora_scripts.cli", *args]


class JobStore:
    def __init__(self, root: Path, cwd: Path, poll_s: float = 0.5):
        self.root, self.cwd, self.poll_s = root, cwd, poll_s
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.children: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- state on disk ------------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise KeyError(job_id)
        return self.root / job_id

    def read(self, job_id: str) -> dict:
        path = self._dir(job_id) / "job.json"
        if not path.is_file():
            raise KeyError(job_id)
        return json.loads(path.read_text(encoding="utf-8"))

    def _write(self, job: dict) -> None:
        with replacing(self._dir(job["id"]) / "job.json") as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(job, ensure_ascii=False, indent=1))

    def all(self) -> list[dict]:
        jobs = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            try:
                jobs.append(self.read(folder.name))
            except (KeyError, ValueError, OSError):
                continue
        return sorted(jobs, key=lambda j: j["created"], reverse=True)

    def folder(self, job_id: str) -> Path:
        """The job's folder (its log, exit code and progress events)."""
        return self._dir(job_id)

    def log_tail(self, job_id: str, max_bytes: int = 6000) -> str:
        path = self._dir(job_id) / "log.txt"
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, path.stat().st_size - max_bytes))
                data = handle.read()
        except FileNotFoundError:
            return ""
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))  # a progress bar's last state

    # --- actions ------------------------------------------------------------------------------
    def submit(self, kind: str, command: list[str], title: str, extra: dict | None = None) -> dict:
        """A new job (queued; started by `tick`)."""
        job_id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:6]
        self._dir(job_id).mkdir(parents=True)
        # label / doctor / generate / tools write their progress events into the job's folder; a training
        # writes them next to its LoRA (progress.py)
        progress = {} if kind in SERIAL_KINDS else {PROGRESS_ENV: str(self._dir(job_id) / PROGRESS_FILE)}
        job = {
            "id": job_id,
            "kind": kind,
            "title": title,
            "command": command,
            "cwd": str(self.cwd),
            "env": progress,
            "status": QUEUED,
            "pid": None,
            "created": time.time(),
            "started": None,
            "finished": None,
            "returncode": None,
            **(extra or {}),
        }
        with self.lock:
            self._write(job)
            self.tick()
        return self.read(job_id)

    def stop(self, job_id: str) -> dict:
        """A queued job is cancelled; a running one gets SIGTERM (the CLI saves and stops)."""
        with self.lock:
            job = self.read(job_id)
            if job["status"] == QUEUED:
                job.update(status=CANCELLED, finished=time.time())
                self._write(job)
            elif job["status"] == RUNNING and job["pid"]:
                try:  # the runner leads a process group with the command in it (ui/runner.py)
                    getattr(os, "killpg", os.kill)(job["pid"], signal.SIGTERM)
                except (ProcessLookupError, PermissionError):  # gone, or its pid reused by another user's
                    pass
                job["stop_requested"] = True
                self._write(job)
            return job

    def tick(self) -> None:
        """Bring every job's status up to date and start what may start."""
        with self.lock:
            jobs = sorted(self.all(), key=lambda j: j["created"])
            for job in jobs:
                if job["status"] == RUNNING:
                    self._check_running(job)
            busy = {j["kind"] for j in jobs if j["status"] == RUNNING and j["kind"] in SERIAL_KINDS}
            for job in jobs:
                if job["status"] != QUEUED:
                    continue
                if job["kind"] in SERIAL_KINDS:
                    if job["kind"] in busy:
                        continue
                    busy.add(job["kind"])
                self._start(job)

    def _start(self, job: dict) -> None:
        runner = [sys.executable, "-m", "lora_scripts.ui.runner", str(self._dir(job["id"]))]
        child = subprocess.Popen(
            runner,
            cwd=job["cwd"],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.children[job["id"]] = child
        job.update(status=RUNNING, pid=child.pid, started=time.time())
        self._write(job)

    def _check_running(self, job: dict) -> None:
        child = self.children.get(job["id"])
        if child is not None:
            alive = child.poll() is None
        else:  # started by an earlier UI: follow it by its pid
            alive = _alive(job["pid"])
        if alive:
            return
        self.children.pop(job["id"], None)
        exit_file = self._dir(job["id"]) / "exit.json"
        try:
            info = json.loads(exit_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {"returncode": None, "finished": time.time()}  # the runner itself was killed
        code = info["returncode"]
        if code == 0:
            status = DONE
        elif code in STOPPED_CODES or (code is None and job.get("stop_requested")):
            status = STOPPED
        else:
            status = FAILED
        job.update(status=status, returncode=code, finished=info["finished"])
        self._write(job)

    # --- the background thread ----------------------------------------------------------------
    def start(self) -> None:
        self.tick()
        self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a bad job folder must not end the loop
                continue


def _alive(pid: int | None) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    if not pid or not pid_exists(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
