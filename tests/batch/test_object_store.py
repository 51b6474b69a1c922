"""output_dir as an fsspec URI: fsspec's real in-memory filesystem (in this process) and a real S3 server
(moto's, over HTTP, through s3fs) for the runs in other processes. The same job gives the same image bytes,
index and contact sheet as to a local folder; a kill -9 then a resume to the bucket records each (id, n)
once; a missing backend package is one sentence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import fsspec
import pytest
from batch_helpers import assert_same_images, download, index_rows, recorded_at, start, wait_for


def test_a_job_to_a_memory_uri_equals_the_same_job_to_a_folder(cli, make_job, tmp_path):
    keys = {"by": "category", "overrides": {"laptop": {"prompt": "{brand} {model} laptop, {colour}"}}}
    assert cli("batch", make_job(**keys)).returncode == 0
    root = f"/catalogue-{uuid.uuid4().hex}/out"
    job = make_job(output_dir=f"memory://{root}", name="uri.yaml", **keys)
    result = cli("batch", job)
    assert result.returncode == 0, result.stderr
    fs = fsspec.filesystem("memory")
    got = download(fs, root, tmp_path / "got")
    local = tmp_path / "out"
    assert_same_images(got, local, 6)
    assert [{**r, "seconds": ""} for r in index_rows(got)] == [
        {**r, "seconds": ""} for r in index_rows(local)
    ]
    assert (got / "failed.csv").read_bytes() == (local / "failed.csv").read_bytes()
    assert (got / "job.json").read_bytes() == (local / "job.json").read_bytes()
    body = (got / "index.html").read_text().split("</h1>")[1]
    assert body == (local / "index.html").read_text().split("</h1>")[1] and body.count("<figure") == 6
    assert not fs.glob(f"{root}/parts/*") and not fs.glob(f"{root}/**/*.tmp")

    made = {p: fs.info(p)["created"] for p in fs.find(f"{root}/images")}
    assert cli("batch", job).returncode == 0  # resumed: nothing left to make, nothing rewritten
    assert {p: fs.info(p)["created"] for p in fs.find(f"{root}/images")} == made
    assert index_rows(download(fs, root, tmp_path / "again")) == index_rows(got)

    make_job(output_dir=f"memory://{root}", name="uri.yaml", steps=4, **keys)
    refused = cli("batch", job)
    assert refused.returncode == 2 and "The job changed" in refused.stderr and "(steps)" in refused.stderr
    assert cli("batch", job, "--new").returncode == 0  # the old results moved aside, the new ones made
    (aside,) = fs.glob(f"{root}/replaced-*")
    assert index_rows(download(fs, aside, tmp_path / "aside")) == index_rows(got)
    assert json.loads(fs.cat_file(f"{root}/job.json"))["steps"] == 4


def test_a_missing_backend_package_is_one_sentence(cli, make_job, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as on a machine without gcsfs: its import fails
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "gs", raising=False)  # none imported
    result = cli("batch", make_job(output_dir="gs://bucket/catalogue"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs the package 'gcsfs'" in lines[0] and "pip install gcsfs" in lines[0]

    unknown = cli("batch", make_job(output_dir="nosuch://bucket/x"))
    assert unknown.returncode == 2 and "unknown protocol 'nosuch://'" in unknown.stderr
    assert "Traceback" not in unknown.stderr and not (tmp_path / "out").exists()


def test_a_bucket_that_does_not_exist_is_one_sentence(cli, make_job, s3_server):
    job = make_job(output_dir="s3://no-such-bucket-here/catalogue", storage_options=s3_server)
    result = cli("batch", job)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Could not write '.write-test-" in result.stderr and "no-such-bucket-here" in result.stderr


def uri_job(make_job, bucket, name: str = "s3.yaml"):
    """The crash_job's catalogue to s3://<bucket>/run: (job file, filesystem, the run's root)."""
    from batch_helpers import KEYS, catalogue

    fs, name_, options = bucket
    job = make_job(
        rows=catalogue(12), output_dir=f"s3://{name_}/run", storage_options=options, name=name, **KEYS
    )
    return job, fs, f"{name_}/run"


@pytest.mark.slow
def test_kill_9_then_resume_to_s3_equals_an_unbroken_local_run(crash_job, make_job, bucket, tmp_path):
    job, fs, root = uri_job(make_job, bucket)
    proc = start(job)
    wait_for(lambda: recorded_at(fs, root) >= 4, proc)
    proc.kill()  # kill -9: no handler, no cleanup, whatever PUT was in flight
    proc.wait()
    finished = recorded_at(fs, root)
    assert 4 <= finished < 24, "killed after the end: nothing to resume"

    events = tmp_path / "progress.jsonl"  # an object store cannot append: the events go to a local file
    env = {**os.environ, "LORA_SCRIPTS_PROGRESS": str(events)}
    command = [sys.executable, "-m", "lora_scripts.cli", "batch", str(job)]
    again = subprocess.run(command, capture_output=True, env=env)
    assert again.returncode == 0, again.stderr
    got = download(fs, root, tmp_path / "got")
    assert_same_images(got, tmp_path / "reference", 24)  # each (id, n) once, the unbroken run's bytes
    assert not fs.glob(f"{root}/parts/*")
    (started,) = [e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "start"]
    assert started["done"] == finished  # what the killed run recorded was not made again


@pytest.mark.slow
def test_two_processes_to_s3_killed_rank_then_resumed_equal_one_run(crash_job, make_job, bucket, tmp_path):
    job, fs, root = uri_job(make_job, bucket)
    events = tmp_path / "progress.jsonl"  # an object store cannot append: the events go to a local file
    env = {**os.environ, "LORA_SCRIPTS_PROGRESS": str(events)}
    command = [sys.executable, "-m", "lora_scripts.cli", "batch", str(job), "--processes", "2"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def ranks() -> dict[int, int]:
        lines = events.read_text().splitlines() if events.exists() else []
        return {e["rank"]: e["pid"] for e in map(json.loads, lines) if e["event"] == "start"}

    def both_recorded() -> bool:
        fs.invalidate_cache()
        return {p.rsplit("/", 1)[1].split("-")[1] for p in fs.glob(f"{root}/parts/index-*.csv")} == {"0", "1"}

    wait_for(lambda: len(ranks()) == 2 and both_recorded(), proc)
    os.kill(ranks()[1], signal.SIGKILL)  # one rank dies; the launcher stops the other
    proc.communicate(timeout=120)
    assert proc.returncode != 0 and recorded_at(fs, root) < 24

    again = subprocess.run(command, capture_output=True)  # both ranks again, to the end: rank 0 merges
    assert again.returncode == 0, again.stderr
    assert_same_images(download(fs, root, tmp_path / "got"), tmp_path / "reference", 24)


def test_index_parts_are_found_under_a_prefix_with_glob_characters():
    """A bucket prefix such as 'run[1]' is a name, not a pattern: its index parts must be listed (else a
    resumed job would make its recorded images again)."""
    from lora_scripts.batch.store import open_output

    url = f"memory://cat-{uuid.uuid4().hex}/run[1]*"
    out = open_output(url, None)
    out.write_text("parts/index-0-1.csv", "id,n\n")
    out.write_text("parts/index-1-2.csv", "id,n\n")
    assert out.glob("parts/index-*.csv") == ["parts/index-0-1.csv", "parts/index-1-2.csv"]


@pytest.mark.parametrize(
    "output_dir, protocol",
    [
        ("C:/out", None),
        ("C:\\out", None),
        ("data:x", None),
        ("run:2024", None),
        ("out/a://b", None),
        ("file:///srv/out", None),
        ("s3://b/p", "s3"),
        ("memory://x", "memory"),
        ("gs://b/p", "gs"),
        ("az://c/p", "az"),
    ],
)
def test_only_scheme_slash_slash_is_a_uri(output_dir, protocol):
    """A URI is `scheme://...`; anything else is a folder (a Windows drive, a name with a colon), never given
    to fsspec (whose split_protocol reads `data:x` as a data URI)."""
    from lora_scripts.batch.store import LocalOutput, ObjectOutput, open_output, split_uri

    assert split_uri(output_dir)[0] == protocol
    if protocol in (None, "memory"):
        kind = LocalOutput if protocol is None else ObjectOutput
        assert type(open_output(output_dir)) is kind


def test_a_folder_named_data_colon_is_a_folder(cli, make_job, tmp_path):
    result = cli("batch", make_job(output_dir="data:x"))  # relative to the job file, as any folder
    assert result.returncode == 0, result.stderr
    rows = index_rows(tmp_path / "data:x")
    assert len(rows) == 6 and all((tmp_path / "data:x" / r["file"]).is_file() for r in rows)
    assert not (tmp_path / "x").exists()
