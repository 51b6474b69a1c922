"""The process that runs one job: `python -m lora_scripts.ui.runner JOB_DIR`.

It starts the job's command (job.json "command", a `lora-scripts` CLI call) with its output in `log.txt`,
passes SIGTERM/SIGINT on to it (the CLI's graceful stop: it saves and can resume), and writes the exit code
to `exit.json` when the command ends. It runs in its own session, so it outlives the UI that started it;
a restarted UI reads `exit.json` to tell a finished job from a failed one. Standard library only.
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
    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    env = {**os.environ, **job.get("env", {}), "PYTHONUNBUFFERED": "1"}
    with open(job_dir / "log.txt", "ab") as log:
        child = subprocess.Popen(
            job["command"],
            cwd=job["cwd"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )

        def forward(signum, frame):
            child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = child.wait()
    exit_file = job_dir / "exit.json"
    tmp = exit_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"returncode": code, "finished": time.time()}), encoding="utf-8")
    os.replace(tmp, exit_file)
    return code


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
