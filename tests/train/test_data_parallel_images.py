"""The image route on two data-parallel processes (accelerate's launcher, gloo on the CPU): caches written by
process 0 and read by the other, one set of samples, checkpoints with their training state and one LoRA;
each process draws the whole batch's noise and takes its part, as one process would draw it, so the LoRA is
one process's to float tolerance."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lora_scripts.progress import read_progress

pytestmark = pytest.mark.slow


def test_two_processes_train_the_same_image_lora_as_one(run_cli, base_config, tmp_path):
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
    for processes in (2, 1):
        out = tmp_path / f"out{processes}"
        path = tmp_path / f"dp{processes}.yaml"
        path.write_text(yaml.safe_dump({**config, "output_dir": str(out)}), encoding="utf-8")
        done = run_cli("train", "-c", str(path), "--processes", str(processes))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # every process draws the whole batch's noise, timesteps, flips and caption shuffles and takes its part:
    # every step's loss and the LoRA are one process's, to float rounding
    losses = {
        n: [e["loss"] for e in read_progress(tmp_path / f"out{n}" / "progress.jsonl") if e["event"] == "step"]
        for n in (1, 2)
    }
    assert len(losses[2]) == 6
    assert losses[1] == pytest.approx(losses[2], abs=1e-5, rel=0)
    one, two = (load_file(tmp_path / f"out{n}" / "test_lora.safetensors") for n in (1, 2))
    assert one.keys() == two.keys()
    assert any(k.startswith("lora_unet_") for k in two)
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-5, rtol=0), name
    assert max(one[k].abs().max().item() for k in one if ".lora_up." in k) > 1e-3  # it trained (up starts 0)
    out = tmp_path / "out2"
    assert (out / "test_lora-step000003.safetensors").is_file()
    assert sorted(p.name for p in (out / "samples").glob("step*.png")) == [
        "step000003-00.png",
        "step000006-00.png",
    ]
    log = (out / "train.log").read_text(encoding="utf-8")
    assert log.count("=== lora-scripts") == 1  # one process writes the run log


def test_a_process_that_fails_mid_launch_is_its_sentence_not_the_launchers_traceback(
    run_cli, base_config, tmp_path
):
    # the output folder is held by a live training (this test's process): process 0 refuses when it takes
    # the lock, after the launcher has started both processes
    out = tmp_path / "out"
    out.mkdir()
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    (out / ".lora-scripts.lock").write_text(json.dumps(lock), encoding="utf-8")
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(base_config), encoding="utf-8")
    done = run_cli("train", "-c", str(path), "--processes", "2")
    assert done.returncode == 2
    assert "Another training" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert not (out / "test_lora.safetensors").exists()
