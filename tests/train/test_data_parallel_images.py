"""The image route on two data-parallel processes (accelerate's launcher, gloo on the CPU): caches written by
process 0 and read by the other, one set of samples, checkpoints with their training state and one LoRA;
each process draws the whole batch's noise and takes its part, as one process would draw it, so the LoRA is
one process's to float tolerance, also when one process is killed mid-run and the run resumed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from launch_helpers import rank_pid, start_and_wait_for_state
from safetensors.torch import load_file

from lora_scripts.progress import read_progress
from lora_scripts.train.launch import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker through /proc (Linux)")
def test_two_processes_killed_and_resumed_train_the_same_image_lora_as_one(cli, base_config, tmp_path):
    config = {
        **base_config,
        # 128 px, not the suite's usual 64: at 64 px the tiny UNet's last down block and mid block run on 1x1
        # latents, where each GroupNorm group holds 2 values and its output is the sign of their difference; a
        # one-ulp difference in a sum (a batch of 2 instead of 3, or one thread instead of two, in ONE
        # process) flips it, and the LoRAs part by ~60% of their largest weight within 9 steps. At 128 px the
        # groups hold 8 values and 1 thread vs 2 agree to 2e-6: the comparison below measures data-parallel
        # training, not that model's chaos
        "resolution": 128,
        "batch_size": 3,  # split 2 + 1 between the processes
        "max_train_steps": 6,  # three epochs of 2 steps: each epoch's shuffle, flips and caption shuffles
        "save_steps": 3,
        "save_state": True,
        "sample_prompts": ["a neon phone"],
        "sample_every_n_steps": 3,
        "sample_steps": 2,
        "noise_offset": 0.1,  # a draw per image on top of the noise: drawn for the whole batch too
        "min_snr_gamma": 5,
        "flip_aug": True,  # a draw per image, for the whole batch on every process
        "shuffle_caption": True,  # the text encoder then runs every step on the process's part
        # SGD: Adam's first steps move every weight by about the learning rate whatever its gradient, so a
        # float-rounding difference in a near-zero gradient would show as a full step
        "optimizer": "sgd",
        "learning_rate": 0.05,
    }
    one_out, out = tmp_path / "out1", tmp_path / "out2"
    one_cfg = write_yaml(tmp_path / "dp1.yaml", {**config, "output_dir": str(one_out)})
    done = cli("train", "-c", str(one_cfg), "--processes", "1")  # one process: this one
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # two processes, process 1 killed (SIGKILL) once the state of step 3 is saved: the launcher stops
    # process 0, nothing final is written, and the same command resumes from that state to the end
    cfg = write_yaml(tmp_path / "dp2.yaml", {**config, "output_dir": str(out), "resume": "auto"})
    run = start_and_wait_for_state(cfg, out, step=3)
    worker = rank_pid(run.pid, 1)
    assert worker is not None, "no rank 1 under the launcher"
    os.kill(worker, signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    assert run.returncode != 0, "the run ended before the kill"
    assert "Traceback" not in err
    assert not (out / "test_lora.safetensors").exists()
    # resumed as kohya users start it: `accelerate launch train.py --config ...`, the launcher's own command
    # line running the seed-compatible script on each process (the killed run went through --processes 2)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1"]
    launch += ["--num_processes", "2", "--main_process_port", str(free_port()), "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", str(ROOT / "train.py"), "--config", str(cfg)]
    again = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    log = (out / "train.log").read_text(encoding="utf-8")
    assert log.count("=== lora-scripts") == 2  # one process writes the run log, once per run
    assert "Resumed from" in log.split("=== lora-scripts")[-1]  # continued, not trained again from step 0

    # every process draws the whole batch's noise, timesteps, flips and caption shuffles and takes its part,
    # and the resumed run restores the draws where the killed one left them: every step's loss and the LoRA
    # are one unbroken process's, to float rounding
    losses = {
        n: {e["step"]: e["loss"] for e in read_progress(o / "progress.jsonl") if e["event"] == "step"}
        for n, o in ((1, one_out), (2, out))
    }
    assert sorted(losses[2]) == [1, 2, 3, 4, 5, 6]
    assert losses[1] == pytest.approx(losses[2], abs=1e-5, rel=0)
    one, two = (load_file(o / "test_lora.safetensors") for o in (one_out, out))
    assert one.keys() == two.keys()
    assert any(k.startswith("lora_unet_") for k in two)
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5, rtol=0), name
    assert max(one[k].abs().max().item() for k in one if ".lora_up." in k) > 1e-3  # it trained (up starts 0)
    assert (out / "test_lora-step000003.safetensors").is_file()
    # step 3's samples are drawn after its state is saved: the kill may land before or after them
    samples = sorted(p.name for p in (out / "samples").glob("step*.png"))
    assert samples in (["step000006-00.png"], ["step000003-00.png", "step000006-00.png"]), samples


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="follows them through /proc (Linux)")
def test_a_process_that_fails_mid_launch_is_its_sentence_and_the_other_ends_at_once(base_config, tmp_path):
    # the output folder is held by a live training (this test's process): process 0 refuses when it takes
    # the lock, after the launcher has started both processes; process 1 is then waiting for it in
    # init_process_group, where no Python signal handler runs: the launcher's SIGTERM must end it there
    # (with the CLI's handler it waited for the launcher's SIGKILL, 30 s later)
    out = tmp_path / "out"
    out.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    (out / ".lora-scripts.lock").write_text(json.dumps(lock), encoding="utf-8")
    path = write_yaml(tmp_path / "dp.yaml", base_config)
    command = [sys.executable, "-m", "lora_scripts.cli", "train", "-c", str(path), "--processes", "2"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = one_left = None
    while run.poll() is None:
        ranks = [rank_pid(run.pid, r) for r in (0, 1)]
        if all(ranks):
            started = True
        elif started and one_left is None and any(ranks):
            one_left = time.monotonic()
        time.sleep(0.05)
    ended = time.monotonic()
    stdout, stderr = run.communicate()
    assert run.returncode == 2
    assert "Another training" in stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert not (out / "test_lora.safetensors").exists()
    assert started and one_left is not None, "the two processes were not seen"
    assert ended - one_left < 15, f"the other process lingered {ended - one_left:.0f} s"
