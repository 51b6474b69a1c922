"""A catalogue job on the tiny model: items CSV, LoRA folder and job YAML written per test."""

from __future__ import annotations

import csv
import importlib.util
import os
from pathlib import Path

import pytest
import yaml
from batch_helpers import KEYS, catalogue

_spec = importlib.util.spec_from_file_location(
    "generate_fixtures", Path(__file__).parents[1] / "generate/conftest.py"
)
generate_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate_fixtures)

ROWS = [
    {"id": "AP-IP15", "brand": "Apple", "model": "iPhone 15", "category": "phone", "colour": "black"},
    {"id": "SM-S24", "brand": "Samsung", "model": "Galaxy S24", "category": "phone", "colour": "blue"},
    {"id": "LN-X1C", "brand": "Lenovo", "model": "X1 Carbon", "category": "laptop", "colour": "black"},
]


def write_items(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def batch_loras(tiny_model, tmp_path_factory) -> Path:
    """tech_phone and metal (kohya files with LoCon convs and text-encoder modules) for the tiny model."""
    folder = tmp_path_factory.mktemp("batch-loras")
    for seed, name in ((1, "tech_phone"), (2, "metal")):
        parts = generate_fixtures.random_parts(tiny_model, seed=seed)
        generate_fixtures.write_kohya(parts, folder / f"{name}.safetensors", output_name=name)
    return folder


@pytest.fixture()
def make_job(tmp_path, tiny_model, batch_loras):
    """make_job(**keys) -> the job YAML path (items: ROWS, tiny model, 32 px, 3 steps, 2 images per item)."""

    def make(rows: list[dict] | None = None, name: str = "job.yaml", **keys) -> Path:
        write_items(tmp_path / "items.csv", rows or ROWS)
        job = {
            "base_model": str(tiny_model["single_file"]),
            "items": "items.csv",
            "prompt": "<lora:tech_phone:0.8> {brand} {model}, {colour}, neon style",
            "negative_prompt": "blurry",
            "lora_dir": str(batch_loras),
            "images_per_item": 2,
            "seed": 7,
            "width": 32,
            "height": 32,
            "steps": 3,
            "cfg": 5.0,
            "sampler": "Euler a",
            "batch_size": 4,
            "output_dir": "out",
            "device": "cpu",
            **keys,
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(job, allow_unicode=True), encoding="utf-8")
        return path

    return make


@pytest.fixture()
def rows() -> list[dict]:
    """The items make_job writes by default."""
    return [dict(r) for r in ROWS]


@pytest.fixture()
def crash_job(cli, make_job, tmp_path) -> tuple[Path, Path]:
    """(job file, its output_dir) for 12 items x 2 images; an unbroken run's output: tmp_path/reference."""
    rows = catalogue(12)
    assert cli("batch", make_job(rows=rows, output_dir="reference", name="ref.yaml", **KEYS)).returncode == 0
    return make_job(rows=rows, **KEYS), tmp_path / "out"


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's, over HTTP on a local port) for the whole session: storage options
    that point s3fs at it (what a job's `storage_options:` would hold)."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request in the test output
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
    server.stop()


@pytest.fixture()
def bucket(s3_server, request):
    """(s3fs filesystem, a new empty bucket's name, the storage options) on the session's server."""
    import re

    import s3fs

    fs = s3fs.S3FileSystem(**s3_server, skip_instance_cache=True)
    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + "-" + os.urandom(3).hex()
    fs.call_s3("create_bucket", Bucket=name)
    return fs, name, s3_server
