"""Helpers of the web UI's tests: free ports, waiting for jobs, tiny training settings, the real
`lora-scripts ui` process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ACTIVE = ("queued", "running")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_job(client, job_id: str, timeout: float = 180, until=None) -> dict:
    """The job's detail once it has ended (or once `until(detail)` holds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        detail = client.get(f"/api/jobs/{job_id}").json()
        ended = detail["job"]["status"] not in ACTIVE
        if until(detail) if until else ended:
            return detail
        if ended:  # it ended before getting there: no use waiting
            break
        time.sleep(0.3)
    raise AssertionError(
        f"job {job_id} did not get there in {timeout} s: {detail['job']} {detail['log'][-2000:]}"
    )


def tiny_train_values(dataset: str, name: str, steps: int) -> dict:
    """A few steps at 64 px on the demo base: seconds on a CPU."""
    return {
        "base_model": "models/demo-base.safetensors",
        "train_data_dir": dataset,
        "output_name": name,
        "resolution": 64,
        "min_bucket_reso": 64,
        "max_bucket_reso": 64,
        "bucket_reso_steps": 64,
        "lora_rank": 4,
        "batch_size": 2,
        "max_train_steps": steps,
        "learning_rate": 0.001,
        "save_steps": 5,
        "device": "cpu",
        "num_threads": 1,
        "doctor": "warn",
        "sample_prompts": ["neon style, a phone"],
        "sample_every_n_steps": 5,
        "sample_steps": 3,
    }


class UiProcess:
    """`lora-scripts ui` as a real process on a free port."""

    def __init__(self, workspace: Path, *args: str, port: int | None = None, lang: str = "en"):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "lora_scripts.cli", "ui", "--workspace", str(workspace)]
        command += ["--port", str(self.port), "--lang", lang, *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.first_line = self.proc.stdout.readline()

    def wait_ready(self) -> UiProcess:
        assert re.search(rf"http://[\w.-]+:{self.port}/", self.first_line), self.first_line
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the UI did not listen on {self.port}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc.stdout.close()
