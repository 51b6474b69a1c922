"""Bugs found when the trainer was tried as a new user would; each test failed before its fix."""

from __future__ import annotations

import pytest
from safetensors import safe_open

from lora_scripts.config import build_config
from lora_scripts.models.sd import StableDiffusion
from lora_scripts.train.run import run_training


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata())


@pytest.fixture()
def counting_loss(monkeypatch):
    """Calls through to the real SD loss, recording which images each micro-batch saw and its loss."""
    calls: list[tuple[list[str], float]] = []
    real = StableDiffusion.loss

    def loss(self, items, *args, **kwargs):
        value = real(self, items, *args, **kwargs)
        calls.append(([i.path.name for i in items], float(value.detach())))
        return value

    monkeypatch.setattr(StableDiffusion, "loss", loss)
    return calls


def test_accumulation_counts_epochs_and_logs_the_window_mean(base_config, counting_loss):
    """epochs: 3 with gradient_accumulation_steps: 2 trained ~6 epochs, and the logged loss was the last
    micro-batch's. 6 images, batch 2: 3 micro-batches an epoch, 2 optimiser steps (2 + 1 micro-batches)."""
    cfg = build_config(
        {
            **base_config,
            "max_train_steps": None,
            "epochs": 3,
            "gradient_accumulation_steps": 2,
            "batch_size": 2,
            "doctor": "off",
        }
    )
    result = run_training(cfg)
    assert result.steps == 6 and result.plan.steps_per_epoch == 2
    seen = [name for names, _ in counting_loss for name in names]
    assert len(seen) == 18  # 3 epochs x 6 images, not a micro-batch more
    images = sorted({p.name for p in cfg.data.train_data_dir.iterdir() if p.suffix == ".png"})
    for epoch in range(3):
        assert sorted(seen[epoch * 6 : (epoch + 1) * 6]) == images, f"epoch {epoch + 1}"
    windows = [(0, 2), (2, 3)] * 3  # micro-batch ranges of each optimiser step
    offset = 0
    for step, (start, end) in enumerate(windows):
        losses = [value for _, value in counting_loss[offset + start : offset + end]]
        assert result.losses[step] == pytest.approx(sum(losses) / len(losses), rel=1e-5), step
        if end == 3:
            offset += 3
    assert _metadata(result.lora_path)["ss_epoch"] == "3"


def test_init_lora_metadata_comes_from_the_file(base_config, tmp_path):
    """Continuing from a rank-4/alpha-2 file saved ss_network_dim 8, ss_network_alpha 8 (config defaults)."""
    first = run_training(
        build_config({**base_config, "lora_rank": 4, "lora_alpha": 2, "max_train_steps": 1, "doctor": "off"})
    )
    follow = dict(base_config)
    follow.pop("lora_rank")
    follow.update(
        init_lora=str(first.lora_path),
        output_dir=str(tmp_path / "v2"),
        max_train_steps=1,
        doctor="off",
    )
    second = run_training(build_config(follow))
    meta = _metadata(second.lora_path)
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2")


def test_fp16_on_cpu_falls_back_and_says_so(base_config, caplog):
    cfg = build_config({**base_config, "mixed_precision": "fp16", "max_train_steps": 1, "doctor": "off"})
    with caplog.at_level("WARNING", logger="lora_scripts"):
        result = run_training(cfg)
    assert any("fp16 needs a GPU" in r.getMessage() for r in caplog.records)
    assert _metadata(result.lora_path)["ss_mixed_precision"] == "no"
    assert cfg.train.mixed_precision == "fp16"  # the config itself is never changed


def test_batch_size_auto_leaves_the_config_alone(base_config):
    cfg = build_config({**base_config, "batch_size": "auto", "max_train_steps": 1, "doctor": "off"})
    result = run_training(cfg)
    assert cfg.train.batch_size == "auto"
    assert int(_metadata(result.lora_path)["ss_batch_size_per_device"]) == result.plan.batch_size >= 1


def test_train_log_holds_what_the_preflight_said(base_config):
    """The doctor's warnings and the data summary reached the console but not train.log."""
    result = run_training(build_config({**base_config, "doctor": "warn", "max_train_steps": 1}))
    text = (result.lora_path.parent / "train.log").read_text(encoding="utf-8")
    assert "doctor:" in text and "duplicates" in text  # the sample set has duplicate images
    assert "samples per epoch" in text
    assert text.index("doctor:") < text.index("Training on")


def test_cuda_without_gpu_writes_nothing(base_config, cli, tmp_path):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**base_config, "device": "cuda"}), encoding="utf-8")
    proc = cli("train", "--config", str(config))
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_run_says_how_long_it_takes_and_that_a_cpu_is_for_trying(base_config, caplog, cli, tmp_path):
    with caplog.at_level("INFO", logger="lora_scripts"):
        run_training(build_config({**base_config, "max_train_steps": 8, "doctor": "off"}))
    estimate = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Measured")]
    assert len(estimate) == 1 and "remaining 4 steps" in estimate[0] and "needs an NVIDIA GPU" in estimate[0]
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**base_config, "output_dir": str(tmp_path / "dry")}), encoding="utf-8")
    dry = cli("train", "--config", str(config), "--dry-run")
    assert dry.returncode == 0 and "No GPU: training runs on the CPU" in dry.stderr


def test_chinese_sample_prompts_are_flagged_before_training(base_config, cli, tmp_path):
    import yaml

    cfg = {**base_config, "sample_prompts": ["一部霓虹风格的手机"], "sample_every_n_steps": 2}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    dry = cli("train", "--config", str(config), "--dry-run")
    assert dry.returncode == 0 and "sample_prompts in English" in dry.stderr


def test_num_threads_is_used_and_logged(base_config, caplog):
    import torch

    before = torch.get_num_threads()
    try:
        with caplog.at_level("INFO", logger="lora_scripts"):
            run_training(
                build_config({**base_config, "num_threads": 2, "max_train_steps": 1, "doctor": "off"})
            )
        assert torch.get_num_threads() == 2 and any(
            "CPU threads: 2" in r.getMessage() for r in caplog.records
        )
    finally:
        torch.set_num_threads(before)
