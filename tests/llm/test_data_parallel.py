"""Data-parallel training (`lora-scripts train --processes 2`: accelerate's launcher, two CPU processes on
gloo) against one process: the same effective batch gives the same LoRA up to float tolerance."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from launch_helpers import rank_pid, start_and_wait_for, start_and_wait_for_state
from llm_files import write_yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _adapter(out) -> dict[str, torch.Tensor]:
    return load_file(out / "cs_tone" / "adapter_model.safetensors")


def load_first_step_free(name: str, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """lora_B starts at zero (peft's init); lora_A is random, so only B's distance from 0 shows training."""
    return torch.zeros_like(weights[name]).float() if "lora_B" in name else weights[name].float()


def test_processes_beyond_the_gpus_or_below_one_are_one_sentence(run_cli, llm_config, tmp_path):
    cfg = write_yaml(tmp_path / "p.yaml", {**llm_config, "output_dir": str(tmp_path / "o")})
    done = run_cli("train", "-c", str(cfg), "--processes", "0")
    assert done.returncode == 2
    assert "--processes is 0" in done.stderr and "Traceback" not in done.stdout + done.stderr


# a run long enough to be stopped mid-way, with a training state every 2 steps
STOPPABLE = {"batch_size": 4, "max_train_steps": 400, "seed": 7, "save_steps": 2, "save_state": True}


def _stop_and_wait(run: subprocess.Popen, rank: int | None) -> str:
    """SIGTERM to the launcher (rank None: the web UI's Stop) or to one process; its stderr once it ended."""
    ranks = [rank_pid(run.pid, r) for r in (0, 1)]
    os.kill(run.pid if rank is None else ranks[rank], signal.SIGTERM)
    try:
        return run.communicate(timeout=240)[1]
    except subprocess.TimeoutExpired:  # a hang: leave no process behind (the ranks have their own sessions)
        for pid in [run.pid, *ranks]:
            with contextlib.suppress(OSError, TypeError):
                os.kill(pid, signal.SIGKILL)
        raise


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through /proc (Linux)")
def test_a_worker_killed_mid_run_resumes_to_one_processs_lora(run_cli, cli, llm_config, tmp_path):
    """Two processes, process 1 killed after step 4's state, resumed by the same command: the LoRA equals
    one process's at the same effective batch. 6 conversations of unequal length, batch 4: steps of 4 and 2
    rows, split 2+2 and 1+1 between the processes; the loss is a mean over tokens, so each process's share
    is weighted by its tokens."""
    config = {
        **llm_config,
        "batch_size": 4,
        "max_train_steps": 30,  # long enough that the kill lands mid-run on a fast machine too
        "learning_rate": 5e-3,
        "seed": 7,
        "save_steps": 2,
        "save_state": True,
        "keep_last_n": 30,  # step-000004 must still be there when the test looks for it
    }
    ref_cfg = write_yaml(tmp_path / "ref.yaml", {**config, "output_dir": str(tmp_path / "ref")})
    done = cli("train", "-c", str(ref_cfg))  # one process: this one
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "run.yaml", {**config, "output_dir": str(out), "resume": "auto"})
    run = start_and_wait_for_state(cfg, out, step=4)
    worker = rank_pid(run.pid, 1)
    assert worker is not None, "no rank 1 under the launcher"
    os.kill(worker, signal.SIGKILL)  # process 1 dies mid-run: the launcher stops process 0
    _, err = run.communicate(timeout=300)
    assert run.returncode != 0, "the run ended before the kill"
    assert "Traceback" not in err
    assert not (out / "cs_tone" / "adapter_model.safetensors").exists()
    again = run_cli("train", "-c", str(cfg), "--processes", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    log = (out / "train.log").read_text(encoding="utf-8").split("=== lora-scripts")[-1]
    assert "Resumed from" in log and "state/step-00000" in log  # continued, not trained again from step 0
    resumed, reference = _adapter(out), _adapter(tmp_path / "ref")
    assert resumed.keys() == reference.keys()
    moved = 0.0
    for name in reference:
        # the adapter is saved in float16: float32 sums in another order may round to the next float16
        assert torch.allclose(resumed[name].float(), reference[name].float(), atol=1e-6, rtol=2**-10), name
        trained = reference[name].float() - load_first_step_free(name, reference)
        moved = max(moved, trained.abs().max().item())
    assert moved > 1e-3  # the LoRA trained: lora_B starts at zero


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through /proc (Linux)")
@pytest.mark.parametrize("target", ["launcher", "rank 1"])
def test_a_stop_signal_stops_every_process_at_one_step_and_saves(run_cli, llm_config, tmp_path, target):
    """The web UI's Stop (SIGTERM to the command) or a signal that reaches one process only: all processes
    stop after the same step (a process stopping alone would leave the other waiting in its next
    all-reduce), the state is saved and the run resumes to the end."""
    config = {**llm_config, **STOPPABLE}
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "run.yaml", {**config, "output_dir": str(out), "resume": "auto"})
    run = start_and_wait_for_state(cfg, out)
    err = _stop_and_wait(run, None if target == "launcher" else 1)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    log = (out / "train.log").read_text(encoding="utf-8")
    assert "Training interrupted at step" in log, log[-2000:]
    stopped = int(log.split("Training interrupted at step")[-1].split()[0].strip(".,"))
    assert 2 <= stopped < 400 and (out / "state" / f"step-{stopped:06d}").is_dir()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through /proc (Linux)")
@pytest.mark.parametrize("target", ["launcher", "rank 0"])
def test_a_stop_while_samples_are_drawn_stops_every_process_after_that_step(
    run_cli, llm_config, tmp_path, target
):
    """Process 0 draws the samples while the other waits for it: a stop then abandons them at once and
    every process stops after that step with the state saved (process 0 stopping alone went on to save and
    met the other's barrier out of order: no state, no message)."""
    config = {
        **llm_config,
        **STOPPABLE,
        "sample_every_n_steps": 2,  # step 2's samples: 40 questions x 64 tokens, base and LoRA: seconds
        "sample_prompts": [f"How much is my phone number {i} worth?" for i in range(40)],
    }
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "run.yaml", {**config, "output_dir": str(out), "resume": "auto"})
    log = out / "train.log"
    run = start_and_wait_for(
        cfg, lambda: log.exists() and "Drawing 40 samples at step 2" in log.read_text(encoding="utf-8")
    )
    err = _stop_and_wait(run, None if target == "launcher" else 0)
    assert run.returncode == 130, err
    assert "Traceback" not in err
    text = log.read_text(encoding="utf-8")
    assert "Training interrupted at step 2." in text, text[-2000:]
    assert not (out / "samples" / "step000002.json").exists()  # abandoned, not finished first
    assert (out / "state" / "step-000002" / "position.json").is_file()


def _two_process_accelerate_config(path: Path) -> Path:
    """What `accelerate config` writes for data-parallel on 2 GPUs (on this CPU: gloo, as --processes 2)."""
    return write_yaml(
        path,
        {
            "compute_environment": "LOCAL_MACHINE",
            "distributed_type": "MULTI_GPU",
            "num_machines": 1,
            "machine_rank": 0,
            "num_processes": 2,
            "mixed_precision": "no",
            "use_cpu": False,
        },
    )


@pytest.mark.parametrize("given, processes", [(["--processes", "1"], 1), ([], 2)])
def test_processes_on_the_command_line_win_over_the_accelerate_config(
    run_cli, llm_config, tmp_path, given, processes
):
    """As `accelerate launch --num_processes 1 --config_file F`: a given --processes (1 included) is the
    count, else the file's num_processes. A kohya key's note is said once, by the launching command, not
    again by each process."""
    out = tmp_path / "out"
    kohya = {"max_data_loader_n_workers": 2}  # accepted with a note: images are read in-process here
    cfg = write_yaml(
        tmp_path / "p.yaml", {**llm_config, **kohya, "output_dir": str(out), "max_train_steps": 2}
    )
    acc = _two_process_accelerate_config(tmp_path / "ddp.yaml")
    done = run_cli("train", "-c", str(cfg), "--accelerate-config", str(acc), *given)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (out / "train.log").read_text(encoding="utf-8")
    word = "process" if processes == 1 else "processes"
    assert f"mixed precision no, {processes} {word}" in log, log
    assert (done.stdout + done.stderr).count("max_data_loader_n_workers (kohya's)") == 1, done.stderr
    assert (out / "cs_tone" / "adapter_model.safetensors").is_file()
