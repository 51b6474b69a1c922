"""--ray on a local Ray cluster of 2 CPUs: a worker killed mid-run is restarted by Ray and its batch retried;
the images equal a one-process run's and every (id, n) is in index.csv once, in a local folder and in a
bucket of a real S3 server (moto's) that the workers write to directly."""

from __future__ import annotations

import signal
import threading
import time

import psutil
import pytest
from batch_helpers import assert_same_images, download, index_rows, recorded, recorded_at

ray = pytest.importorskip("ray")


def kill_a_worker_after(count, rows: int, killed: list) -> None:
    """When count() (rows recorded so far) reaches `rows`, kill -9 one of the job's Ray workers."""
    deadline = time.time() + 300
    while count() < rows and time.time() < deadline:
        time.sleep(0.02)
    for proc in psutil.process_iter(["cmdline"]):
        if "BatchMaker" in " ".join(proc.info["cmdline"] or []):
            proc.send_signal(signal.SIGKILL)
            killed.append(proc.pid)
            return


def _run_killing_a_worker(job, recorded_now) -> tuple[list[int], dict]:
    """The job on a local 2-CPU Ray cluster while a thread kills one worker once 2 images are recorded."""
    from lora_scripts.batch.ray_run import run_on_ray

    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker_after, args=(recorded_now, 2, killed))
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    try:
        killer.start()
        counts = run_on_ray(job, None)
        killer.join()
    finally:
        ray.shutdown()
    return killed, counts


@pytest.mark.slow
def test_ray_job_survives_a_killed_worker(crash_job, cli, tmp_path):

    job, out = crash_job
    killed, counts = _run_killing_a_worker(job, lambda: recorded(out))
    assert killed and recorded(out) == 0  # a worker died mid-run; the parts are merged at the end
    assert counts["index"] == 24
    assert_same_images(out, tmp_path / "reference", 24)

    before = index_rows(out)
    assert cli("batch", job).returncode == 0  # resumed: nothing left to make
    assert index_rows(out) == before


@pytest.mark.slow
def test_ray_job_to_s3_survives_a_killed_worker(crash_job, make_job, bucket, tmp_path):
    from batch_helpers import KEYS, catalogue


    fs, name, options = bucket
    job = make_job(
        rows=catalogue(12), output_dir=f"s3://{name}/run", storage_options=options, name="s3.yaml", **KEYS
    )
    killed, counts = _run_killing_a_worker(job, lambda: recorded_at(fs, f"{name}/run"))
    assert killed and counts["index"] == 24
    assert_same_images(download(fs, f"{name}/run", tmp_path / "got"), tmp_path / "reference", 24)
