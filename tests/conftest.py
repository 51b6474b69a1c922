"""Shared fixtures: a tiny SD1.5-topology model saved both ways, a small captioned image set, and two ways to
run the CLI (a real process, and in-process for speed)."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

# Before anything imports huggingface_hub / transformers / diffusers (they read these at import time): every
# cache a test could touch lives in a folder made for this session, so no test passes or fails because of what
# ~/.cache holds. os.environ is inherited by the CLI processes the tests start.
_CACHE = Path(tempfile.mkdtemp(prefix="lora-scripts-test-cache-"))
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.update(
    {
        "XDG_CACHE_HOME": str(_CACHE),
        "HF_HOME": str(_CACHE / "huggingface"),
        "HF_HUB_CACHE": str(_CACHE / "huggingface" / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(_CACHE / "huggingface" / "hub"),
        "TRANSFORMERS_CACHE": str(_CACHE / "huggingface" / "hub"),
        "HF_DATASETS_CACHE": str(_CACHE / "huggingface" / "datasets"),
        "TORCH_HOME": str(_CACHE / "torch"),
        "MPLCONFIGDIR": str(_CACHE / "matplotlib"),
        "LORA_SCRIPTS_CACHE": str(_CACHE / "lora-scripts"),
        "HF_HUB_OFFLINE": "1",
    }
)
# Tiny models on a small, shared CPU: one thread each (also for CLI subprocesses) avoids oversubscription,
# which made the suite ~20x slower when several torch processes ran at once.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from lora_scripts.demo import make_sample_images  # noqa: E402
from lora_scripts.models.tiny import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def session_cache() -> Path:
    """The folder HF_HOME, HF_HUB_CACHE, XDG_CACHE_HOME, LORA_SCRIPTS_CACHE... point into for this run."""
    return _CACHE


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


@pytest.fixture(scope="session")
def run_cli():
    """The real console entry point in a fresh process, as a user runs it. For what only a process shows:
    signals, the interpreter's own traceback, the exit status the shell sees, entry-point scripts. Session
    scope (it holds nothing): module fixtures can use it too."""
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


@dataclass
class CliResult:
    """What `run_cli` returns, for the in-process runner: returncode, stdout, stderr."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def cli(monkeypatch):
    """The same Typer app as `run_cli`, called in this process (no interpreter start, no re-import of torch):
    exit code from SystemExit, stdout and stderr captured. Logging, warning filters and environment
    variables the command changes are put back afterwards."""
    from typer.testing import CliRunner

    from lora_scripts.cli import app
    from lora_scripts.console import console

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(console, "_width", 200)  # as COLUMNS=200 in run_cli: no wrapped log lines
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level
        levels = {
            name: lg.level
            for name, lg in logging.Logger.manager.loggerDict.items()
            if isinstance(lg, logging.Logger)
        }
        environ = dict(os.environ)
        try:
            with warnings.catch_warnings():
                result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            for name, value in levels.items():
                logging.getLogger(name).setLevel(value)
            for key in set(os.environ) - set(environ):
                del os.environ[key]
            os.environ.update(environ)
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            stderr += "".join(traceback.format_exception(*result.exc_info))  # an escaped exception, shown
        return CliResult(result.exit_code, result.stdout, stderr)

    return run


def pytest_collection_modifyitems(config, items):
    """The longest files first (tests/suite_order.py), the rest in collection order."""
    from suite_order import LONGEST_FIRST

    order = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.nodeid.split("::")[0], len(order)))  # stable: files keep order
