"""The SDXL benchmark's pieces still run after trainer changes: both sides train the tiny SDXL with the same
LoRA under the one step clock, the 8 GB config builds with the bench's replacements, and the GPU script
parses (its full CPU check is `bash bench/gpu_figures.sh --tiny`, minutes: not a test)."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
sys.path.insert(0, str(ROOT))  # bench/ is the repository's package, not an installed one


@pytest.fixture
def spec(tmp_path, monkeypatch):
    from bench import common

    monkeypatch.setattr(common, "CACHE", tmp_path / "cache")  # photos() and the model folder go here
    from lora_scripts.models.tiny_sdxl import save_tiny_sdxl

    return {
        "route": "sdxl",
        "model": str(save_tiny_sdxl(tmp_path / "cache")["diffusers"]),
        "data": str(common.photos(1, (300, 200))),
        "resolution": 64,
        "rank": 4,
        "alpha": 2,
        "batch_size": 1,
        "seed": 0,
        "lr": 1e-4,
        "device": "cpu",
        "mixed_precision": "no",
        "gradient_checkpointing": True,
        "doctor": "off",
    }


@pytest.mark.slow
def test_both_sdxl_sides_train_the_same_lora_under_one_clock(spec, tmp_path):
    from bench.clock import StepClock
    from bench.sdxl_bare import train_sdxl_bare
    from bench.trainer_side import train_project

    params = {}
    for side, train in (("bare", train_sdxl_bare), ("trainer", train_project)):
        clock = StepClock(1, 1)
        losses = train({**spec, "out": str(tmp_path / side)}, 2)["losses"]
        result = clock.result()
        assert result["optimizer_steps"] == 2 and len(result["step_seconds"]) == 1
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
        params[side] = result["trainable_params"]
    assert params["bare"] == params["trainer"] > 0


def test_the_8gb_config_builds_with_the_bench_replacements(spec, tmp_path):
    from bench.sdxl_8gb import CONFIG
    from bench.trainer_side import file_config
    from lora_scripts.config import build_config

    raw = file_config(
        {
            **spec,
            "out": str(tmp_path / "out"),
            "config_file": str(CONFIG),
            "config_overrides": {"optimizer": "adafactor", "enable_bucket": False},
        },
        6,
    )
    cfg = build_config(raw, source="bench")
    assert cfg.train.gradient_checkpointing and cfg.train.cache_text_encoder_outputs
    assert cfg.train.cache_latents == "disk" and cfg.train.max_train_steps == 6
    assert cfg.sample.sample_prompts == [] and str(cfg.model.base_model) == spec["model"]


def test_the_gpu_script_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_figures.sh")]).returncode == 0
