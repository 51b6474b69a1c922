"""--ray on a local Ray cluster of 2 CPUs: a worker killed mid-run is restarted by Ray and its batch retried;
the images equal a one-process run's and every (id, n) is in index.csv once, in a local folder and in a
bucket of a real S3 server (moto's) that the workers write to directly. Through the real CLI: a driver
killed with SIGKILL leaves no Ray process behind and its job resumes, a worker that keeps dying stops the
job with one sentence after Ray's RESTARTS, and Ctrl-C finishes the running batches and merges them. Every run
writes the progress events of a one-process run."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from batch_helpers import (
    assert_same_images,
    catalogue,
    download,
    index_rows,
    progress_events,
    recorded,
    recorded_at,
    wait_for,
)

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
    """The job on the running Ray cluster while a thread kills one worker once 2 images are recorded."""
    from lora_scripts.batch.ray_run import run_on_ray

    killed: list[int] = []
    killer = threading.Thread(target=kill_a_worker_after, args=(recorded_now, 2, killed))
    killer.start()
    counts = run_on_ray(job, None)
    killer.join()
    return killed, counts


@pytest.mark.slow
def test_ray_job_survives_a_killed_worker_in_a_folder_and_in_a_bucket(
    crash_job, make_job, bucket, cli, tmp_path
):
    """One local cluster (2 CPUs, no GPU) runs the job twice, to a folder and to an S3 bucket, each time with
    a worker killed mid-run."""
    from batch_helpers import KEYS

    job, out = crash_job
    fs, name, options = bucket
    s3_job = make_job(
        rows=catalogue(12), output_dir=f"s3://{name}/run", storage_options=options, name="s3.yaml", **KEYS
    )
    ray.init(num_cpus=2, num_gpus=0, log_to_driver=False, include_dashboard=False)  # the reference: CPU
    try:
        killed, counts = _run_killing_a_worker(job, lambda: recorded(out))
        s3_killed, s3_counts = _run_killing_a_worker(s3_job, lambda: recorded_at(fs, f"{name}/run"))
    finally:
        ray.shutdown()
    assert killed and recorded(out) == 0  # a worker died mid-run; the parts are merged at the end
    assert counts["index"] == 24
    [events] = _runs(out)  # the retried batch counted once
    assert_progress(events, 24, 0, "done", 24)
    assert_same_images(out, tmp_path / "reference", 24)
    before = index_rows(out)
    assert cli("batch", job).returncode == 0  # resumed: nothing left to make
    assert index_rows(out) == before

    assert s3_killed and s3_counts["index"] == 24
    assert_same_images(download(fs, f"{name}/run", tmp_path / "got"), tmp_path / "reference", 24)


# Through the real CLI (`--ray local`): a cluster of 2 CPUs and no GPU, its files in the test's own folder
SMALL = {"images_per_item": 2, "batch_size": 2, "steps": 2, "width": 64, "height": 64}


@pytest.fixture()
def small_job(cli, make_job, tmp_path) -> tuple[Path, Path]:
    """(job file, its output_dir) for 16 items x 2 images, 2 steps; an unbroken run's: tmp_path/reference."""
    rows = catalogue(16)
    assert cli("batch", make_job(rows=rows, output_dir="reference", name="ref.yaml", **SMALL)).returncode == 0
    return make_job(rows=rows, **SMALL), tmp_path / "out"


@pytest.fixture()
def ray_env():
    """The environment of a `--ray local` CLI: 2 CPUs, no GPU, Ray's session files in a folder of its own (a
    short path: Ray's sockets live there). Every process of that cluster inherits RAY_TMPDIR, which finds them
    (ray_processes); any still running at the end is killed, so a failed test leaks none to CI."""
    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    yield {
        **os.environ,
        "RAY_OVERRIDE_RESOURCES": '{"CPU": 2, "GPU": 0}',
        "RAY_TMPDIR": folder,
        "COLUMNS": "200",
    }
    for proc in ray_processes(folder):
        proc.kill()
    shutil.rmtree(folder, ignore_errors=True)


def start_on_ray(job: Path, env: dict, session: bool = False) -> subprocess.Popen:
    """The CLI with `--ray local`; `session`: in a process group of its own (a terminal's foreground job)."""
    command = [sys.executable, "-m", "lora_scripts.cli", "batch", str(job), "--ray", "local"]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=session
    )


def ray_processes(folder: str, agents: bool = True) -> list[psutil.Process]:
    """The running processes of the cluster whose RAY_TMPDIR is `folder` (zombies are not running)."""
    found = []
    for proc in psutil.process_iter(["status", "cmdline"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.environ().get("RAY_TMPDIR") != folder:
                continue
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if agents or not " ".join(proc.info["cmdline"] or []).endswith("Agent"):
            found.append(proc)
    return found


def assert_cluster_ends(folder: str, timeout: float = 30) -> None:
    """The cluster of a driver that is gone ends with it: GCS, raylet, workers. Ray's dashboard and
    runtime-env agents end only after GCS's reconnect timeout (about a minute): the fixture ends those."""
    deadline = time.time() + timeout
    while (left := ray_processes(folder, agents=False)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, [" ".join(p.cmdline()) for p in left]


def workers_of(env: dict) -> list[psutil.Process]:
    """The job's Ray actors (Ray titles them ray::BatchMaker...)."""
    return [p for p in ray_processes(env["RAY_TMPDIR"]) if "BatchMaker" in " ".join(p.info["cmdline"] or [])]


def _rows(part: Path) -> list[dict]:
    """The whole rows of an index part (a line cut off by the kill is not recorded)."""
    lines = part.read_text(encoding="utf-8").splitlines(keepends=True)
    return list(csv.DictReader(line for line in lines if line.endswith("\n")))


def _made(out: Path) -> int:
    """(id, n) recorded so far, merged into index.csv or in the index parts of the running job (a part being
    merged is in both for a moment: counted once)."""
    parts = {(r["id"], r["n"]) for part in (out / "parts").glob("index-*.csv") for r in _rows(part)}
    merged = {(r["id"], r["n"]) for r in _rows(out / "index.csv")} if (out / "index.csv").exists() else set()
    return len(parts | merged)


@pytest.mark.slow
def test_a_killed_driver_and_then_a_worker_that_keeps_dying_lose_nothing(small_job, ray_env, cli, tmp_path):
    """A job's life through both faults of a Ray run, with the real CLI (`--ray local`): its driver killed
    with SIGKILL leaves no Ray process and the job resumes on Ray without making anything again; there a
    worker that dies on every batch stops the job with one sentence after Ray's RESTARTS; the rest is made in
    one process, and the images are an unbroken run's."""
    from lora_scripts.batch.ray_run import RESTARTS

    job, out = small_job
    proc = start_on_ray(job, ray_env)
    wait_for(lambda: recorded(out) >= 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert_cluster_ends(ray_env["RAY_TMPDIR"])
    finished = {p: p.stat().st_mtime_ns for p in (out / "images").rglob("*.png")}
    first = {(r["id"], r["n"]) for part in (out / "parts").glob("index-*.csv") for r in _rows(part)}
    assert 4 <= len(first) < 30, "killed too late: nothing to resume"

    proc = start_on_ray(job, {**ray_env, "LORA_SCRIPTS_LANG": "zh"})
    wait_for(lambda: _made(out) >= len(first) + 2, proc)  # the resumed run made images of its own
    deaths, deadline = set(), time.time() + 300
    while proc.poll() is None and time.time() < deadline:  # each worker killed once it is up: OOM each time
        for worker in workers_of(ray_env):
            worker.kill()
            deaths.add(worker.pid)
        time.sleep(0.05)
    proc.kill()  # when Ray restarts workers without end
    _, stderr = proc.communicate(timeout=60)
    assert_cluster_ends(ray_env["RAY_TMPDIR"])
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    assert progress_events(out)[-1]["state"] == "failed"
    made = len(index_rows(out))
    sentence = f"A Ray worker died {RESTARTS + 1} times (Ray restarted it {RESTARTS} times), so the job"
    assert sentence in stderr and f"with {made} of 32 images made and recorded in index.csv" in stderr
    assert "怎么办：某个 Ray 进程反复崩溃" in stderr
    assert len(deaths) >= RESTARTS + 1 and len(first) + 2 <= made < 32
    recorded_files = {r["file"] for r in index_rows(out) if (r["id"], r["n"]) in first}
    assert all(finished[out / f] == (out / f).stat().st_mtime_ns for f in recorded_files)  # not made again

    kept = {out / r["file"]: (out / r["file"]).stat().st_mtime_ns for r in index_rows(out)}
    assert cli("batch", job).returncode == 0  # the rest, here in one process
    assert_same_images(out, tmp_path / "reference", 32)  # every (id, n) once, as an unbroken run's
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())  # not made again
    assert not list((out / "parts").glob("*.csv")) and not list(out.rglob("*.tmp*"))


def _runs(out: Path) -> list[list[dict]]:
    """The progress events of each run of the job, split at its start events."""
    runs: list[list[dict]] = []
    for event in progress_events(out):
        if event["event"] == "start":
            runs.append([])
        runs[-1].append(event)
    return runs


def assert_progress(events: list[dict], total: int, done_before: int, state: str, done_after: int) -> None:
    """One run's events: start with the totals, done rising batch by batch (of 2), end with its state."""
    start, *batches, end = events
    assert start["event"] == "start" and (start["total"], start["done"]) == (total, done_before), start
    done = [e["done"] for e in batches]
    assert all(e["event"] == "batch" and e["total"] == total for e in batches) and done == sorted(done)
    assert end == {**end, "event": "end", "state": state, "done": done_after}, end
    assert done[-1] == done_after and len(done) == (done_after - done_before) // SMALL["batch_size"]


@pytest.mark.slow
def test_ctrl_c_finishes_the_running_batches_merges_and_the_rerun_makes_the_rest(make_job, ray_env):
    """Ctrl-C as a terminal sends it: SIGINT to the driver's process group (with Ray's GCS and raylet), and
    here to the actors too, which Ray puts in groups of their own. The batches running on the actors are
    finished and recorded, no new one starts, index.csv and index.html are written, exit 130 with the usual
    sentence; the same command then makes only the rest. Progress events and the bar as in one process."""
    job = make_job(rows=catalogue(12), **SMALL)
    out = job.parent / "out"
    proc = start_on_ray(job, ray_env, session=True)  # a process group of its own, as a terminal's job
    wait_for(lambda: _made(out) >= 4, proc)
    signalled = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # the driver and Ray's GCS and raylet
    for worker in workers_of(ray_env):  # the actors too, as if they were in that group (they are not)
        worker.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "Stopping after the running batches" in stderr and "Stopped by the user." in stderr
    rows = index_rows(out)
    stopped = len(rows)
    assert len({(r["id"], r["n"]) for r in rows}) == stopped and 4 <= stopped < 24 and stopped % 2 == 0
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")) == sorted(
        r["file"] for r in rows
    )  # every image made is recorded once: no batch was cut off
    assert recorded(out) == 0  # the parts were merged
    sheet = (out / "index.html").read_text(encoding="utf-8")
    assert sheet.count("<figure") == stopped and all(f'"{r["file"]}"' in sheet for r in rows)
    [events] = _runs(out)
    assert_progress(events, 24, 0, "stopped", stopped)
    assert any(e["time"] > signalled for e in events if e["event"] == "batch")  # those running were finished
    assert_cluster_ends(ray_env["RAY_TMPDIR"])

    kept = {out / r["file"]: (out / r["file"]).stat().st_mtime_ns for r in rows}
    proc = start_on_ray(job, ray_env)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "24/24 images  12/12 items" in stderr and "img/min" in stderr  # the bar's last state
    rows = index_rows(out)
    assert len(rows) == 24 and len({(r["id"], r["n"]) for r in rows}) == 24  # every (id, n) once
    assert sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")) == sorted(
        r["file"] for r in rows
    )
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())  # not made again
    assert_progress(_runs(out)[1], 24, stopped, "done", 24)


def test_the_sentence_of_a_worker_that_could_not_start():
    """An error in a worker's start (a node that cannot read a path the driver can): its own last line."""
    from ray.exceptions import ActorDiedError, RayTaskError

    from lora_scripts.batch.ray_run import worker_died
    from lora_scripts.errors import ConfigError

    cause = ConfigError("The items file '/data/items.csv' does not exist", "Check `items:` in the job file")
    trace = f"Traceback (most recent call last):\n  ...\nlora_scripts.errors.ConfigError: {cause}"
    task = RayTaskError("BatchMaker.__init__", trace, cause, proctitle="ray::x", pid=1, ip="10.0.0.2")
    err = worker_died(ActorDiedError(task), 0, 32)
    assert str(err).startswith(
        "A Ray worker could not start: The items file '/data/items.csv' does not exist. Check `items:` in "
        "the job file. Every node needs lora-scripts installed and must read the job file, items, base model"
    )


@pytest.mark.slow
def test_ray_needs_an_address_on_the_command_line(run_cli, make_job):
    job = make_job()
    bare = run_cli("batch", str(job), "--ray")
    assert bare.returncode == 2 and "'--ray' requires an argument" in bare.stderr
    eaten = run_cli("batch", str(job), "--ray", "--new")  # click takes --new as the address
    assert eaten.returncode == 2 and "--ray needs an address, not '--new'" in eaten.stderr, eaten.stderr


def test_an_error_raised_in_a_batch_is_its_own_sentence_after_the_batches_before_it():
    """A batch whose make() raises (the actor lives on) stops the job like a dead worker: no batch starts
    after it, and the driver then raises the batch's own error, one of ours printing its sentence as a
    one-process run would, instead of Ray's RayTaskError as an 'Unexpected error'."""
    from lora_scripts.batch.ray_run import _make_all, worker_failed
    from lora_scripts.errors import ConfigError

    class Failing:  # stands in for BatchMaker (not under test): batch 1 raises one of our errors
        def make(self, index):
            if index == 1:
                raise ConfigError("The LoRA file 'metal.safetensors' went missing", "Put it back")
            return [f"{index}a.png", f"{index}b.png"]

    ray.init(num_cpus=2, num_gpus=0, log_to_driver=False, include_dashboard=False)
    finished = []
    try:
        actor = ray.remote(num_cpus=1)(Failing).remote()  # one actor: batches in order
        died = _make_all(ray, [actor], [0, 1, 2, 3], lambda index, files: finished.append((index, files)))
    finally:
        ray.shutdown()
    assert finished == [(0, ["0a.png", "0b.png"])]  # batch 0 only: 2 and 3 were not started
    err = worker_failed(died, 2, 8)
    assert isinstance(err, ConfigError) and str(err).startswith(
        "The LoRA file 'metal.safetensors' went missing"
    )
