"""Shared fixtures: a tiny SD1.5-topology model saved both ways, and a small captioned image set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models on a small, shared CPU: one thread each (also for CLI subprocesses) avoids oversubscription,
# which made the suite ~20x slower when several torch processes ran at once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from lora_scripts.demo import make_sample_images  # noqa: E402
from lora_scripts.models.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def sample_data(tmp_path) -> Path:
    make_sample_images(tmp_path / "images", count=6)
    return tmp_path / "images"


@pytest.fixture()
def base_config(tiny_model, sample_data, tmp_path) -> dict:
    return {
        "base_model": str(tiny_model["single_file"]),
        "train_data_dir": str(sample_data),
        "output_dir": str(tmp_path / "out"),
        "output_name": "test_lora",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
        "lora_rank": 4,
        "batch_size": 2,
        "max_train_steps": 4,
        "learning_rate": 1e-3,
        "device": "cpu",
    }


@pytest.fixture()
def run_cli():
    """The real console entry point in a fresh process, as a user runs it."""
    return _run_cli


def _run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lora_scripts.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
