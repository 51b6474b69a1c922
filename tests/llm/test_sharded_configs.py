"""accelerate's FSDP / DeepSpeed configs (`accelerate launch --config_file FILE -m lora_scripts train ...`):
accelerate runs them only on GPUs, so on this CPU the run refuses in one sentence before writing anything;
the checks a GPU run passes through, and the gathering of sharded LoRA tensors for the saved adapter (FSDP 2's
DTensors, made on the CPU with gloo), are tested here directly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml
from llm_files import write_yaml

from lora_scripts.config.load import load_config
from lora_scripts.errors import ConfigError
from lora_scripts.inject.lora import LoraWeights
from lora_scripts.train.launch import free_port
from lora_scripts.train.sharding import check_sharding, whole

FSDP2 = {
    "compute_environment": "LOCAL_MACHINE",
    "distributed_type": "FSDP",
    "fsdp_config": {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"},
    "machine_rank": 0,
    "mixed_precision": "no",
    "num_machines": 1,
    "num_processes": 2,
    "use_cpu": False,
}


@pytest.mark.slow
def test_an_fsdp_config_on_a_cpu_is_one_sentence_through_accelerates_launcher(llm_config, tmp_path):
    # accelerate 1.15 on a CPU: with this config each process would train alone (DistributedType.NO)
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "llm.yaml", {**llm_config, "output_dir": str(out)})
    acc = tmp_path / "fsdp.yaml"
    acc.write_text(yaml.safe_dump({**FSDP2, "main_process_port": free_port()}), encoding="utf-8")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(acc)]
    done = subprocess.run(
        [*launch, "-m", "lora_scripts", "train", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode != 0
    assert "accelerate runs FSDP only on GPUs" in done.stdout + done.stderr
    assert "--processes N" in done.stdout + done.stderr
    assert not (out / "cs_tone").exists()


@pytest.mark.slow
def test_train_with_an_accelerate_config_is_one_sentence_and_no_traceback(run_cli, llm_config, tmp_path):
    """`lora-scripts train --processes 2 --accelerate-config FILE`: the same refusal, said by the processes,
    without the launcher's traceback that `accelerate launch` prints after it."""
    out = tmp_path / "out"
    cfg = write_yaml(tmp_path / "llm.yaml", {**llm_config, "output_dir": str(out)})
    acc = tmp_path / "fsdp.yaml"
    acc.write_text(yaml.safe_dump(FSDP2), encoding="utf-8")
    done = run_cli("train", "-c", str(cfg), "--processes", "2", "--accelerate-config", str(acc))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "accelerate runs FSDP only on GPUs" in done.stderr and "Traceback" not in done.stderr
    assert not (out / "cs_tone").exists()
    missing = run_cli("train", "-c", str(cfg), "--processes", "2", "--accelerate-config", str(tmp_path / "x"))
    assert missing.returncode == 2 and "--accelerate-config" in missing.stderr
    assert "is not a file" in missing.stderr and "Traceback" not in missing.stderr


def _config(tmp_path, llm_config, **extra):
    return load_config(write_yaml(tmp_path / "c.yaml", {**llm_config, **extra}))


@pytest.mark.parametrize(
    "variable,mode", [("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")]
)
def test_sharded_modes_refuse_what_they_cannot_do(
    monkeypatch, tmp_path, llm_config, base_config, variable, mode
):
    monkeypatch.setenv(variable, "true")
    cfg = _config(tmp_path, llm_config)
    with pytest.raises(ConfigError, match=f"accelerate runs {mode} only on GPUs"):
        check_sharding(cfg, cpu=True)
    check_sharding(cfg, cpu=False)  # an LLM on GPUs: accepted
    with pytest.raises(ConfigError, match="save_state and resume cannot be used"):
        check_sharding(_config(tmp_path, llm_config, resume="auto"), cpu=False)
    check_sharding(_config(tmp_path, llm_config, save_steps=2, save_state=False), cpu=False)
    with pytest.raises(ConfigError, match="save_state and resume cannot be used"):
        check_sharding(_config(tmp_path, llm_config, save_steps=2), cpu=False)  # save_state: true by default
    with pytest.raises(ConfigError, match="sample_prompts cannot be used"):
        check_sharding(_config(tmp_path, llm_config, sample_prompts=["hi"]), cpu=False)
    with pytest.raises(ConfigError, match="scale_weight_norms cannot be used"):
        check_sharding(_config(tmp_path, llm_config, scale_weight_norms=1), cpu=False)
    images = load_config(write_yaml(tmp_path / "i.yaml", base_config))
    with pytest.raises(ConfigError, match="is for the chat-LLM route"):
        check_sharding(images, cpu=False)
    accumulating = _config(tmp_path, llm_config, gradient_accumulation_steps=2)
    if mode == "DeepSpeed":
        with pytest.raises(ConfigError, match="gradient_accumulation_steps above 1"):
            check_sharding(accumulating, cpu=False)
    else:
        check_sharding(accumulating, cpu=False)


def test_without_an_accelerate_config_nothing_is_checked(monkeypatch, tmp_path, llm_config):
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    check_sharding(_config(tmp_path, llm_config, save_steps=2, resume="auto"), cpu=True)


def test_fsdp2_shards_are_read_whole_for_the_saved_adapter():
    """FSDP 2 holds each LoRA tensor as a DTensor sharded across the processes; the adapter file gets the
    whole tensor. One process with gloo on the CPU: a 2-way sharded mesh needs two, so the shard is checked
    as a DTensor over a mesh of one (full_tensor() is the same collective either way)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        down, up = torch.randn(4, 16), torch.randn(16, 4)
        weights = LoraWeights(
            distribute_tensor(down, mesh, [Shard(0)]), distribute_tensor(up, mesh, [Shard(0)]), 8.0
        )
        read = whole({"model": {"layers.0.q_proj": weights}})["model"]["layers.0.q_proj"]
        assert type(read.down) is torch.Tensor and torch.equal(read.down, down) and torch.equal(read.up, up)
        assert read.alpha == 8.0 and read.magnitude is None
    finally:
        dist.destroy_process_group()


def test_a_copy_outlives_the_gathered_tensors():
    t = torch.ones(3)
    kept = whole(LoraWeights(t, t, 1.0), copy=True)
    t.zero_()  # ZeRO-3 / FSDP 1 free the gathered storage when whole_params ends
    assert kept.down.sum() == 3 and whole(t) is t
