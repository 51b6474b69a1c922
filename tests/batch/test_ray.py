"""--ray on a local Ray cluster of 2 CPUs: a worker killed mid-run is restarted by Ray and its batch retried;
the images equal a one-process run's and every (id, n) is in index.csv once."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
from batch_helpers import assert_same_images, index_rows, recorded

ray = pytest.importorskip("ray")


def kill_a_worker_after(out, rows: int, killed: list) -> None:
    deadline = time.time() + 300
    while recorded(out) < rows and time.time() < deadline:
        time.sleep(0.02)
    for proc in psutil.process_iter(["cmdline"]):
        if "BatchMaker" in " ".join(proc.info["cmdline"] or []):
            proc.send_signal(signal.SIGKILL)
            killed.append(proc.pid)
            return


@pytest.mark.slow
def test_ray_job_survives_a_killed_worker(crash_job, cli, tmp_path):
    from lora_scripts.batch.ray_run import run_on_ray

    job, out = crash_job
    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker_after, args=(out, 2, killed))
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    try:
        killer.start()
        counts = run_on_ray(job, None)
        killer.join()
    finally:
        ray.shutdown()
    assert killed and recorded(out) == 0  # a worker died mid-run; the parts are merged at the end
    assert counts["index"] == 24
    assert_same_images(out, tmp_path / "reference", 24)

    before = index_rows(out)
    assert cli("batch", job).returncode == 0  # resumed: nothing left to make
    assert index_rows(out) == before
