"""Held-out loss, the overfitting alarm and early stopping, on real training runs of the tiny model."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
from lora_scripts.errors import ConfigError
from lora_scripts.train.run import run_training
from lora_scripts.train.validation import Score, Validation, split_validation


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


@pytest.fixture(scope="module")
def overfit_data(tmp_path_factory) -> tuple[Path, Path]:
    """Two flat magenta images to train on, four noise textures held out: memorising the colour stops
    helping the held-out images, so their loss turns up while the training loss still falls."""
    root = tmp_path_factory.mktemp("overfit")
    (root / "train").mkdir()
    (root / "val").mkdir()
    for name, colour in (("a", (255, 0, 200)), ("b", (250, 10, 190))):
        Image.new("RGB", (64, 64), colour).save(root / "train" / f"{name}.png")
        (root / "train" / f"{name}.txt").write_text("neon style", encoding="utf-8")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "val" / f"v{i}.png")
        (root / "val" / f"v{i}.txt").write_text("neon style", encoding="utf-8")
    return root / "train", root / "val"


def _overfit_config(tiny_model, overfit_data, out: Path, **extra):
    train, val = overfit_data
    return build_config(
        {
            "base_model": str(tiny_model["single_file"]),
            "train_data_dir": str(train),
            "validation_dir": str(val),
            "output_dir": str(out),
            "resolution": 64,
            "lora_rank": 16,
            "batch_size": 2,
            "max_train_steps": 60,
            "learning_rate": 2e-2,
            "device": "cpu",
            "doctor": "off",
            "validation_steps": 4,
            "validation_patience": 1,
            "save_steps": 8,
            **extra,
        }
    )


def test_split_is_spread_deterministic_and_never_empties_training(base_config):
    cfg = build_config({**base_config, "validation_split": 2})
    index = scan_dataset(cfg.data)
    train, held = split_validation(index, cfg.data)
    again = split_validation(scan_dataset(cfg.data), cfg.data)[1]
    assert len(held) == 2 and len(train.items) == 4 and [i.path for i in held] == [i.path for i in again]
    assert not {i.path for i in held} & {i.path for i in train.items}
    assert len(split_validation(index, build_config({**base_config, "validation_split": 0.5}).data)[1]) == 3
    with pytest.raises(ConfigError, match="leaving none to train on"):
        split_validation(index, build_config({**base_config, "validation_split": 6}).data)


def test_scoring_does_not_change_training(base_config, tmp_path):
    """Held-out scores draw from their own fixed generators: the trained LoRA is bit for bit the one of a
    run without validation, and the same run scores the same numbers twice."""
    val = tmp_path / "val"
    shutil.copytree(base_config["train_data_dir"], val)
    plain = run_training(build_config({**base_config, "doctor": "off", "output_dir": str(tmp_path / "a")}))
    runs = [
        run_training(
            build_config(
                {
                    **base_config,
                    "doctor": "off",
                    "output_dir": str(tmp_path / name),
                    "validation_dir": str(val),
                    "validation_steps": 2,
                }
            )
        )
        for name in ("b", "c")
    ]
    a = load_file(plain.lora_path)
    assert all(torch.equal(a[k], load_file(runs[0].lora_path)[k]) for k in a)
    scores = [[(s.step, s.loss) for s in r.validation.scores] for r in runs]
    assert scores[0] == scores[1] and [s for s, _ in scores[0]] == [0, 2, 4]
    assert scores[0][0][1] != scores[0][-1][1]


def test_alarm_logic_needs_rising_held_out_and_falling_training_loss():
    v = Validation(items=[], patience=2)
    v.scores = [Score(0, 1.0, None), Score(4, 0.8, 0.9), Score(8, 0.85, 0.8), Score(12, 0.9, 0.7)]
    assert v.overfitting() and v.best.step == 4
    v.scores[-1] = Score(12, 0.9, 0.95)  # training loss rose too: a bad learning rate, not overfitting
    assert not v.overfitting()
    v.scores[-1] = Score(12, 0.84, 0.7)  # held-out loss went down again
    assert not v.overfitting()


@pytest.mark.slow
def test_overtraining_raises_the_alarm_and_stamps_checkpoints(tiny_model, overfit_data, tmp_path, caplog):
    cfg = _overfit_config(tiny_model, overfit_data, tmp_path / "out")
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        result = run_training(cfg)
    alarm = [r.getMessage() for r in caplog.records if "overfitting" in r.getMessage().lower()]
    assert alarm and result.validation.alarm == alarm[0]
    v = result.validation
    raised = [s.step for s in v.scores].index(v.alarm_step) + 1  # the scores up to the alarm
    assert v.alarm_best == min(v.scores[1:raised], key=lambda s: s.loss)
    assert v.scores[raised - 1].loss > v.scores[raised - 2].loss
    assert (
        f"from step {v.alarm_best.step}" in alarm[0] and "fewer epochs or a lower learning_rate" in alarm[0]
    )
    best_file = tmp_path / "out" / f"{cfg.output.name()}-best.safetensors"  # the best of the whole run
    assert best_file.name in alarm[0] and _meta(best_file)["ss_validation_step"] == str(v.best.step)
    for _step, path, loss in result.checkpoints:  # every step checkpoint carries its held-out loss
        assert _meta(path)["ss_validation_loss"] == loss and float(loss) > 0
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Held-out loss (")]
    assert summary and "base model" in summary[0] and "%" in summary[0]
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Overfitting?" in report and "held-out loss" in report and "best" in report


@pytest.mark.slow
def test_early_stopping_keeps_the_best_lora(tiny_model, overfit_data, tmp_path):
    cfg = _overfit_config(tiny_model, overfit_data, tmp_path / "out", early_stopping=True)
    result = run_training(cfg)
    best = result.validation.best
    assert result.steps < 60 and best.step < result.steps
    final, best_file = (
        load_file(result.lora_path),
        load_file(tmp_path / "out" / f"{cfg.output.name()}-best.safetensors"),
    )
    assert all(torch.equal(final[k], best_file[k]) for k in final)
    assert _meta(result.lora_path)["ss_validation_step"] == str(best.step)
