"""Nothing is lost: a killed or interrupted run resumes to exactly the LoRA an unbroken run makes."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError, FormatError, TrainingError
from lora_scripts.train.run import run_training

STEPS, EVERY = 24, 3
# The step the SIGKILL test kills at: drawn from a fixed seed so a failure reproduces; another seed with
# RESUME_KILL_SEED=<n>. The seed and step are printed and named in the assertion messages.
KILL_SEED = int(os.environ.get("RESUME_KILL_SEED", "0"))


def _cfg(base_config, out: Path, **extra) -> dict:
    return {
        **base_config,
        "output_dir": str(out),
        "max_train_steps": STEPS,
        "save_steps": EVERY,
        "resume": "auto",
        "shuffle_caption": True,
        "caption_dropout_rate": 0.2,
        "flip_aug": True,
        "gradient_accumulation_steps": 2,
        "lr_scheduler": "cosine",
        **extra,
    }


def _start(cfg: dict, tmp_path: Path, name: str) -> subprocess.Popen:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "lora_scripts.cli", "train", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline
        time.sleep(0.01)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def _assert_same_lora(a: Path, b: Path, where: str = "") -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys(), where
    assert all(torch.equal(ta[k], tb[k]) for k in ta), f"resumed LoRA differs from the unbroken run {where}"


@pytest.fixture()
def unbroken(base_config, tmp_path) -> Path:
    result = run_training(build_config(_cfg(base_config, tmp_path / "unbroken")))
    return result.lora_path


@pytest.mark.slow
def test_sigkill_at_a_seeded_step_then_resume_is_bit_exact(base_config, tmp_path, unbroken, cli):
    out = tmp_path / "killed"
    cfg = _cfg(base_config, out)
    kill_after = random.Random(KILL_SEED).choice([3, 6, 9, 12, 15])
    where = f"killed after step {kill_after} (RESUME_KILL_SEED={KILL_SEED})"
    print(where)
    proc = _start(cfg, tmp_path, "killed")
    _wait_for(out / "state" / f"step-{kill_after:06d}" / "position.json", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "test_lora.safetensors").exists(), where
    resumed = cli("train", "--config", str(tmp_path / "killed.yaml"))  # the resume: in this process
    assert resumed.returncode == 0, f"{where}: {resumed.stderr[-2000:]}"
    assert "Resumed from" in resumed.stderr, where
    _assert_same_lora(unbroken, out / "test_lora.safetensors", where)
    assert len(list((out / "state").glob("step-*"))) <= 2, where  # keep_last_n, no half-pruned folder left


def test_a_kill_while_pruning_leaves_no_half_deleted_state(tmp_path, monkeypatch):
    import shutil

    from lora_scripts.train.state import Position, save_state

    def save(step: int) -> None:
        save_state(tmp_path, Position(step=step), random.Random(0), {}, keep=2)

    save(3)
    save(6)
    real_rmtree = shutil.rmtree

    def killed_while_pruning(path, *args, **kwargs):
        if (Path(path) / "position.json").is_file():  # an old, complete state: its first file goes, then
            (Path(path) / "position.json").unlink()  # the process is killed
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_while_pruning)
    with pytest.raises(KeyboardInterrupt):
        save(9)
    monkeypatch.undo()
    save(12)  # the resumed run saves on
    save(15)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["step-000012", "step-000015"]


@pytest.mark.slow
def test_ctrl_c_saves_lora_and_state_then_resume_is_bit_exact(base_config, tmp_path, unbroken, cli):
    out = tmp_path / "interrupted"
    cfg = _cfg(base_config, out)
    proc = _start(cfg, tmp_path, "interrupted")
    _wait_for(out / "state" / "step-000006" / "position.json", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err
    assert "resume: auto" in err
    step = max(int(p.name.split("-")[1]) for p in (out / "state").glob("step-*"))
    assert (out / f"test_lora-step{step:06d}.safetensors").is_file()
    resumed = cli("train", "--config", str(tmp_path / "interrupted.yaml"))  # the resume: in this process
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _assert_same_lora(unbroken, out / "test_lora.safetensors")


def test_resume_path_that_is_not_a_state_is_a_sentence(base_config, tmp_path):
    with pytest.raises(ConfigError, match="not a training-state folder"):
        run_training(build_config({**base_config, "resume": str(tmp_path)}))


def test_nan_loss_stops_with_causes(base_config, tiny_model, tmp_path):
    sd = load_file(tiny_model["single_file"])
    sd["model.diffusion_model.out.2.weight"][0, 0, 0, 0] = float("nan")
    from safetensors.torch import save_file

    broken = tmp_path / "nan_model.safetensors"
    save_file(sd, broken)
    with pytest.raises(TrainingError, match="NaN") as err:
        run_training(build_config({**base_config, "base_model": str(broken)}))
    assert "learning rate" in str(err.value)
    assert not (Path(base_config["output_dir"]) / "test_lora.safetensors").exists()


def test_init_lora_continues_from_a_file(base_config, tmp_path):
    first = run_training(
        build_config(
            {
                **base_config,
                "output_dir": str(tmp_path / "a"),
                "lora_rank": 4,
                "train_text_encoder": True,
                "max_train_steps": 3,
            }
        )
    )
    cfg = {k: v for k, v in base_config.items() if k != "lora_rank"}
    second = run_training(
        build_config(
            {
                **cfg,
                "output_dir": str(tmp_path / "b"),
                "init_lora": str(first.lora_path),
                "learning_rate": 1e-9,
                "max_train_steps": 1,
            }
        )
    )
    a, b = _tensors(first.lora_path), _tensors(second.lora_path)
    assert a.keys() == b.keys()  # same modules, rank and TE part as the file
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)
    with pytest.raises(ConfigError, match="rank 4"):
        run_training(
            build_config(
                {
                    **base_config,
                    "output_dir": str(tmp_path / "c"),
                    "lora_rank": 8,
                    "init_lora": str(first.lora_path),
                }
            )
        )


def test_init_lora_from_peft_format(base_config, tmp_path):
    from diffusers import StableDiffusionPipeline
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from lora_scripts.config import NetworkConfig
    from lora_scripts.inject.lora import inject_unet

    pipe = StableDiffusionPipeline.from_pretrained(
        Path(base_config["base_model"]).parent / "tiny-sd15-diffusers"
    )
    inject_unet(pipe.unet, NetworkConfig(lora_rank=2))
    peft_sd = {
        f"unet.{k}": v for k, v in get_peft_model_state_dict(pipe.unet, adapter_name="default").items()
    }
    save_file(peft_sd, tmp_path / "peft_lora.safetensors")
    cfg = {k: v for k, v in base_config.items() if k != "lora_rank"}
    result = run_training(
        build_config({**cfg, "init_lora": str(tmp_path / "peft_lora.safetensors"), "max_train_steps": 1})
    )
    down = _tensors(result.lora_path)[
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight"
    ]
    assert down.shape[0] == 2
    with pytest.raises(FormatError, match="not a LoRA"):
        save_file({"x": torch.zeros(1)}, tmp_path / "x.safetensors")
        run_training(
            build_config(
                {**cfg, "output_dir": str(tmp_path / "z"), "init_lora": str(tmp_path / "x.safetensors")}
            )
        )
