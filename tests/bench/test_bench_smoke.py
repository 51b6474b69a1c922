"""The benchmarks still run after trainer changes, and their results have the shape the method promises
(tiny model, small photos, a few steps: not a speed test)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
STEPS = 3  # timed steps per run
SMALL = ["--tiny", "--images", "2", "--photo", "600x400"]
RUNS = ["--rounds", "1", "--no-report"]  # the page is written once at the end, from every result


@pytest.mark.slow
def test_bench_runs_on_the_tiny_model_and_reports_ab_with_an_aa_control(tmp_path):
    env = {**os.environ, "BENCH_OUT": str(tmp_path), "BENCH_THREADS": "1"}

    def start(module, *args):
        log = open(tmp_path / f"{module}.log", "w")  # a file, not a pipe: a full pipe would stall a lane
        command = [sys.executable, "-m", module, *args]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc.log = log
        return proc

    def finish(proc):
        proc.wait(timeout=300)
        proc.log.close()
        assert proc.returncode == 0, Path(proc.log.name).read_text()[-3000:]

    # two lanes at once (one torch thread each) keep the test short; the speed lane builds the tiny model
    # while the other decodes, so it is built once
    speed = start("bench.speed", *SMALL, *RUNS, "--warmup", "1", "--steps", str(STEPS))
    finish(start("bench.decode", *SMALL, "--reps", "1"))
    finish(start("bench.caching", *SMALL, *RUNS, "--epochs", "2"))
    finish(speed)
    finish(start("bench.report"))

    results = tmp_path / "results" / "tiny"
    s = json.loads((results / "speed.json").read_text())
    arms = sorted((r["pair"], r["arm"]) for r in s["runs"])
    assert arms == [("A/A", "bare"), ("A/A", "bare again"), ("A/B", "bare"), ("A/B", "trainer")]
    for run in s["runs"]:
        assert len(run["step_seconds"]) == STEPS and run["timed"]["n"] == STEPS
        assert 0 < run["timed"]["min"] <= run["timed"]["median"] <= run["timed"]["max"]
        assert run["train_peak_mb"] > 0
    (round_,) = s["summary"]["rounds"]
    for pair in ("A/B", "A/A"):
        assert math.isfinite(round_[pair]) and round_[pair] > 0
        assert s["summary"][pair]["median"] == round_[pair]
    assert len(s["summary"]["trainable_params"]) == 1  # both sides train the same LoRA

    c = json.loads((results / "caching.json").read_text())
    assert {r["mode"] for r in c["runs"]} == {"no cache", "latents + TE cached", "bare loop"}
    assert all(len(r["step_seconds"]) == 2 * 2 - 1 for r in c["runs"])
    d = json.loads((results / "decode.json").read_text())
    assert d["file"]["size"] == [600, 400]
    assert all(t["cpu"] > 0 and t["wall"] > 0 for cell in d["seconds"].values() for t in cell.values())

    page = (tmp_path / "benchmarks.md").read_text()
    for heading in ("## 1. Trainer vs bare loop (A/B) and bare vs bare (A/A)", "## 2. Decoding", "## 3."):
        assert heading in page
    assert (tmp_path / "benchmarks.png").is_file()
