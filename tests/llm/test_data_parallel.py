"""Data-parallel training (`lora-scripts train --processes 2`: accelerate's launcher, two CPU processes on
gloo) against one process: the same effective batch gives the same LoRA up to float tolerance."""

from __future__ import annotations

import pytest
import torch
from llm_files import write_yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _adapter(out) -> dict[str, torch.Tensor]:
    return load_file(out / "cs_tone" / "adapter_model.safetensors")


def test_two_processes_train_the_same_lora_as_one(run_cli, llm_config, tmp_path):
    # 6 conversations of unequal length, batch 4: steps of 4 and 2 rows, split 2+2 and 1+1 between the
    # processes; the loss is a mean over tokens, so each process's share is weighted by its tokens
    config = {**llm_config, "batch_size": 4, "max_train_steps": 3, "learning_rate": 5e-3, "seed": 7}
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"out{processes}"
        cfg = write_yaml(tmp_path / f"p{processes}.yaml", {**config, "output_dir": str(out)})
        done = run_cli("train", "-c", str(cfg), "--processes", str(processes))
        assert done.returncode == 0, done.stdout + done.stderr
        runs[processes] = _adapter(out)
    one, two = runs[1], runs[2]
    assert one.keys() == two.keys()
    moved = 0.0
    for name in one:
        assert torch.allclose(one[name], two[name], atol=2e-5, rtol=1e-4), name
        moved = max(moved, (one[name].float() - load_first_step_free(name, one)).abs().max().item())
    assert moved > 1e-3  # the LoRA trained: lora_B starts at zero


def load_first_step_free(name: str, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """lora_B starts at zero (peft's init); lora_A is random, so only B's distance from 0 shows training."""
    return torch.zeros_like(weights[name]).float() if "lora_B" in name else weights[name].float()


def test_processes_beyond_the_gpus_or_below_one_are_one_sentence(run_cli, llm_config, tmp_path):
    cfg = write_yaml(tmp_path / "p.yaml", {**llm_config, "output_dir": str(tmp_path / "o")})
    done = run_cli("train", "-c", str(cfg), "--processes", "0")
    assert done.returncode == 2
    assert "--processes is 0" in done.stderr and "Traceback" not in done.stdout + done.stderr
