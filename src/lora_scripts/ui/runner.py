"""The process that runs one job: `python -m lora_scripts.ui.runner JOB_DIR`.

It starts the job's command (job.json "command", a `lora-scripts` CLI call) with its output in `log.txt`
and writes the exit code to `exit.json` when the command ends. It leads its own session and process group,
so it outlives the UI that started it (a restarted UI reads `exit.json` to tell a finished job from a failed
one), and Stop signals the whole group: the command gets SIGTERM itself (the CLI's graceful stop: it saves
and can resume) even when it arrives before this process could pass it on. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def run(job_dir: Path) -> int:
    started: list[bool] = [False]
    early: list[int] = []  # stop signals that came before the command was there to get them from the group
    for sig in (signal.SIGTERM, signal.SIGINT):  # first thing: a stop now must not kill this process
        signal.signal(sig, lambda signum, frame: None if started[0] else early.append(signum))
    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    env = {**os.environ, **job.get("env", {}), "PYTHONUNBUFFERED": "1"}
    if early:  # stopped before the command started: it never runs
        code = 130
    else:
        with open(job_dir / "log.txt", "ab") as log:
            child = subprocess.Popen(  # exec resets the handlers: the command gets the signals as the CLI
                job["command"],
                cwd=job["cwd"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
            started[0] = True
            if early:  # came while it was being started: pass it on
                child.send_signal(early[0])
            code = child.wait()
    _write_exit(job_dir, code)
    return code


def _write_exit(job_dir: Path, code: int) -> None:
    exit_file = job_dir / "exit.json"
    tmp = exit_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"returncode": code, "finished": time.time()}), encoding="utf-8")
    os.replace(tmp, exit_file)


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
