"""Resuming from a state that cannot be used is one sentence (exit 2), or falls back to the previous complete
state; a state file never runs code (weights_only), and the state itself round-trips bit-exactly."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.demo import make_sample_images
from lora_scripts.train.run import run_training
from lora_scripts.train.state import ParamSet, Position, load_state, save_state

STEPS, EVERY = 6, 2


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory) -> dict:
    """One 6-step rank-4 run saving states at steps 2 and 4 (trained once for this module)."""
    root = tmp_path_factory.mktemp("finished")
    make_sample_images(root / "images", count=6)
    cfg = {
        "base_model": str(tiny_model["single_file"]),
        "train_data_dir": str(root / "images"),
        "output_dir": str(root / "out"),
        "output_name": "test_lora",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
        "lora_rank": 4,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "device": "cpu",
        "max_train_steps": STEPS,
        "save_steps": EVERY,
        "shuffle_caption": True,
        "flip_aug": True,
    }
    run_training(build_config(cfg))
    return cfg


@pytest.fixture()
def out(finished_run, tmp_path) -> tuple[dict, Path]:
    """A copy of the finished run's output folder, with its final LoRA moved aside as the reference."""
    out = tmp_path / "out"
    shutil.copytree(finished_run["output_dir"], out)
    (out / "test_lora.safetensors").rename(tmp_path / "reference.safetensors")
    return {**finished_run, "output_dir": str(out), "resume": "auto"}, out


def _train(cfg: dict, tmp_path: Path, cli):
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return cli("train", "--config", str(path))


def _error_line(done) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Unexpected error" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def _cut_in_half(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
def test_cut_newest_state_falls_back_to_the_previous_one(out, tmp_path, cli):
    cfg, folder = out
    _cut_in_half(folder / "state" / "step-000004" / "training_state.pt")
    done = _train(cfg, tmp_path, cli)
    assert done.returncode == 0, done.stderr[-3000:]
    # read in train.log: the console folds long paths at its width, mid-name when a path is longer than a line
    log = (folder / "train.log").read_text(encoding="utf-8").split("=== lora-scripts")[-1]
    assert "step-000004" in log and "previous complete one" in log
    assert "Resumed from" in log and "step-000002" in log
    resumed = load_file(folder / "test_lora.safetensors")
    reference = load_file(tmp_path / "reference.safetensors")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)  # still bit-exact


@pytest.mark.slow
def test_no_usable_state_left_is_one_sentence(out, tmp_path, cli):
    cfg, folder = out
    for state in (folder / "state").glob("step-*"):
        _cut_in_half(state / "training_state.pt")
    line = _error_line(_train(cfg, tmp_path, cli))
    assert "No usable training state" in line and "cut short or damaged" in line and "start fresh" in line
    assert "PytorchStreamReader failed" in line  # the reason, inside the sentence
    assert "and the 1 older one cannot be used either" in line


@pytest.mark.slow
def test_changed_lora_rank_names_both_ranks(out, tmp_path, cli):
    cfg, folder = out  # named explicitly: resume: auto already refuses another rank by fingerprint
    state = str(folder / "state" / "step-000004")
    line = _error_line(_train({**cfg, "lora_rank": 8, "resume": state}, tmp_path, cli))
    assert "step-000004" in line and "made with LoRA rank 4" in line and "has lora_rank 8" in line
    assert "Resume with lora_rank 4, or start fresh" in line and "size mismatch" not in line


@pytest.mark.slow
def test_changed_optimizer_is_one_sentence(out, tmp_path, cli):
    cfg, folder = out
    state = str(folder / "state" / "step-000004")
    line = _error_line(_train({**cfg, "optimizer": "sgd", "resume": state}, tmp_path, cli))
    assert "another optimizer" in line and "momentum" in line


@pytest.mark.slow
@pytest.mark.parametrize("drop", ["rng", "lora"])
def test_state_without_a_part_names_what_is_missing(out, tmp_path, cli, drop):
    cfg, folder = out
    state = folder / "state" / "step-000004"
    payload = torch.load(state / "training_state.pt", weights_only=True)
    del payload[drop]
    torch.save(payload, state / "training_state.pt")
    line = _error_line(_train({**cfg, "resume": str(state)}, tmp_path, cli))
    assert "incomplete" in line and f"'{drop}'" in line and "KeyError" not in line


class _PlantedCode:
    """Unpickling this (weights_only=False) would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.slow
@pytest.mark.parametrize("resume", ["auto", "folder"])
def test_planted_pickle_never_runs(base_config, tmp_path, cli, resume):
    out = Path(base_config["output_dir"])
    state = out / "state" / "step-000002"
    state.mkdir(parents=True)
    marker = tmp_path / "code_ran"
    torch.save({"lora": _PlantedCode(marker), "rng": {}}, state / "training_state.pt")
    (state / "position.json").write_text(json.dumps({"step": 2, "epoch": 0, "batch": 2, "losses": []}))
    cfg = {**base_config, "resume": "auto" if resume == "auto" else str(state)}
    line = _error_line(_train(cfg, tmp_path, cli))
    assert not marker.exists()
    if resume == "auto":  # refused before the file is opened: no fingerprint, so not this run's state
        assert "not made by this run" in line
    else:
        assert "holds Python objects other than tensors" in line and "not loaded" in line


def test_state_file_is_plain_and_restores_every_rng(tmp_path):
    layer = torch.nn.Linear(3, 2)
    params = {"unet.layer.lora_A.default.weight": layer.weight}
    optimizer = torch.optim.AdamW([layer.weight], lr=1e-3)
    layer.weight.grad = torch.ones_like(layer.weight)
    optimizer.step()
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    objects = {"lora": ParamSet(params), "optimizer": optimizer, "lr_scheduler": schedule, "scaler": None}
    trainer_rng = random.Random(5)
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leaves a cached gauss in numpy's state
    torch.manual_seed(3)
    saved = save_state(tmp_path, Position(step=2, batch=1, losses=[0.5]), trainer_rng, objects, keep=2)
    torch.load(saved / "training_state.pt", weights_only=True)  # nothing but tensors and plain data
    expected = (random.random(), np.random.randn(), torch.rand(1).item(), trainer_rng.random())
    for seed in (random.seed, np.random.seed, torch.manual_seed, trainer_rng.seed):
        seed(9)
    position = load_state(saved, trainer_rng, objects)
    assert position == Position(step=2, epoch=0, batch=1, losses=[0.5])
    assert (random.random(), np.random.randn(), torch.rand(1).item(), trainer_rng.random()) == expected


def test_rank_change_of_a_conv_layer_names_conv_rank():
    from lora_scripts.errors import TrainingError

    now = {
        "unet.conv.lora_A.default.weight": torch.nn.Parameter(torch.zeros(8, 4, 3, 3)),
        "unet.conv.lora_B.default.weight": torch.nn.Parameter(torch.zeros(6, 8, 1, 1)),
    }
    saved = {"unet.conv.lora_A.default.weight": torch.zeros(4, 4, 3, 3)}
    saved["unet.conv.lora_B.default.weight"] = torch.zeros(6, 4, 1, 1)
    with pytest.raises(TrainingError, match="made with LoRA rank 4 .* has conv_rank 8"):
        ParamSet(now).load_state_dict(saved)
    with pytest.raises(TrainingError, match="other LoRA layers"):
        ParamSet(now).load_state_dict({"unet.other.lora_A.default.weight": torch.zeros(1)})


def test_resume_accepts_the_state_folder_itself(tmp_path):
    from lora_scripts.train.state import find_state

    layer = torch.nn.Linear(2, 2)
    objects = {"lora": ParamSet({"w": layer.weight}), "optimizer": torch.optim.SGD([layer.weight], lr=0.1)}
    objects["lr_scheduler"] = torch.optim.lr_scheduler.LambdaLR(objects["optimizer"], lambda s: 1.0)
    for step in (2, 4):
        save_state(tmp_path, Position(step=step), random.Random(0), objects, keep=2)
    for given in (tmp_path, tmp_path / "state"):
        assert find_state(str(given), tmp_path / "elsewhere") == tmp_path / "state" / "step-000004"


def test_a_kill_while_deleting_an_old_state_leaves_nothing_half(tmp_path, monkeypatch):
    from lora_scripts.train import state as state_module

    def save(step: int) -> Path:
        return save_state(tmp_path, Position(step=step), random.Random(0), {}, keep=2)

    save(3)
    save(6)
    real_rmtree = shutil.rmtree

    def killed_while_deleting(path, *args, **kwargs):
        if (Path(path) / "training_state.pt").is_file():  # its first file goes, then the process dies
            (Path(path) / "training_state.pt").unlink()
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(state_module.shutil, "rmtree", killed_while_deleting)
    with pytest.raises(KeyboardInterrupt):
        save(9)
    monkeypatch.undo()
    names = [p.name for p in state_module.list_states(tmp_path)]
    assert names == ["step-000006", "step-000009"]  # the half-deleted step-3 is under no step-* name
    (tmp_path / "state" / ".tmp-killed-save").mkdir()  # what a kill inside torch.save leaves
    (tmp_path / "state" / ".tmp-killed-save" / "training_state.pt").write_bytes(b"half")
    save(12)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["step-000009", "step-000012"]
