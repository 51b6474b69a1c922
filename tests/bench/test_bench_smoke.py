"""The benchmarks still run (tiny model, one step) after trainer changes; these are not speed tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_speed_and_caching_run_on_the_tiny_model(tmp_path):
    env = {**os.environ, "BENCH_OUT": str(tmp_path), "BENCH_THREADS": "1"}
    for args in (
        ["bench.speed", "--tiny", "--rounds", "1", "--warmup", "0", "--steps", "1", "--sweep-rounds", "0"],
        ["bench.caching", "--tiny", "--epochs", "2", "--images", "2", "--rounds", "1"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    speed = json.loads((tmp_path / "results" / "tiny" / "speed.json").read_text())
    assert {r["side"] for r in speed["main_runs"]} == {"trainer", "bare"}
    assert (tmp_path / "results" / "tiny" / "caching.json").is_file()
    assert (tmp_path / "benchmarks.md").is_file()
