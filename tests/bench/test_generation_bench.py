"""bench/generation.py still runs after job or generate changes, and its results have the promised shape
(tiny model, a handful of images: not a speed test)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_generation_bench_reports_job_vs_bare_with_an_aa_control(tmp_path):
    env = {**os.environ, "BENCH_OUT": str(tmp_path), "BENCH_THREADS": "1"}
    args = ["--tiny", "--rounds", "1", "--items", "2", "--per-item", "2", "--steps", "2", "--batch-size", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.generation", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "tiny" / "generation.json").read_text())
    runs = result["runs"]
    assert sorted((r["pair"], r["arm"]) for r in runs) == [
        ("A/A", "bare"),
        ("A/A", "bare again"),
        ("A/B", "bare"),
        ("A/B", "job"),
    ]
    assert all(r["images"] == 4 and r["seconds"] > 0 for r in runs)  # both sides made every image
    (round_,) = result["summary"]["rounds"]
    assert math.isclose(round_["A/B"], result["summary"]["speedup"])
    job = next(r for r in runs if r["arm"] == "job")
    bare = next(r for r in runs if (r["pair"], r["arm"]) == ("A/B", "bare"))
    assert math.isclose(round_["A/B"], (job["images"] / job["seconds"]) / (bare["images"] / bare["seconds"]))
    assert 0 <= result["summary"]["job_vs_bare_mean_abs_pixel_diff"] < 255
    assert not (tmp_path / ".cache" / "gen-runs-tiny").exists()  # the runs' images are cleaned up
