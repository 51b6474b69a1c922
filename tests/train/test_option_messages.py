"""Bad values of the training options, as the user sees them from `lora-scripts train`: one sentence, exit 2,
no traceback."""

from __future__ import annotations

import pytest
import yaml

from lora_scripts.config.train import OPTIMIZER_LIBRARIES


def _one_error(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def _write(tmp_path, base_config, **over):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**base_config, **over}), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"loss_type": "l3"}, ["'loss_type'", "l2", "huber", "smooth_l1"]),
        ({"optimizer_type": "Adam9"}, ["'optimizer'", "adamw8bit", "prodigy"]),
        ({"min_snr_gamma": -1}, ["'min_snr_gamma'", "> 0"]),
        ({"huber_schedule": "cosine"}, ["'huber_schedule'", "snr"]),
        ({"down_lr_weight": "1,1,1"}, ["'down_lr_weight'", "12 multipliers", "it has 3"]),
        ({"up_lr_weight": "wavy"}, ["'up_lr_weight'", "sine"]),
        ({"adaptive_noise_scale": 0.01}, ["adaptive_noise_scale", "noise_offset"]),
        ({"v_parameterization": "maybe"}, ["'v_parameterization'", "true or false"]),
        ({"lr_scheduler_num_cycles": 0}, ["'lr_scheduler_num_cycles'", ">= 1"]),
        ({"prior_loss_weight": -0.5}, ["'prior_loss_weight'", ">= 0"]),
    ],
)
def test_bad_option_values_are_one_sentence(cli, tmp_path, base_config, over, words):
    error = _one_error(cli("train", "--config", str(_write(tmp_path, base_config, **over)), "--dry-run"))
    assert all(w in error for w in words), error


def test_a_missing_optimizer_library_is_said_before_anything_loads(cli, tmp_path, base_config, monkeypatch):
    monkeypatch.setitem(OPTIMIZER_LIBRARIES, "prodigy", ("prodigyopt_missing", "Prodigy", "prodigyopt"))
    path = _write(tmp_path, base_config, optimizer="prodigy")
    error = _one_error(cli("train", "--config", str(path), "--dry-run"))
    assert "'optimizer'" in error and "pip install prodigyopt" in error, error


def test_missing_reg_folder_is_one_sentence(cli, tmp_path, base_config):
    path = _write(tmp_path, base_config, reg_data_dir=str(tmp_path / "no_reg"))
    error = _one_error(cli("train", "--config", str(path), "--dry-run"))
    assert "reg_data_dir" in error and "no_reg" in error, error


def test_the_resolved_yaml_of_the_new_options_loads_back_the_same(tmp_path, base_config):
    """train --dry-run and the web UI show the resolved YAML; it must load as the same config."""
    from lora_scripts.config import build_config, load_config
    from lora_scripts.config.show import resolved_yaml

    cfg = build_config(
        {
            **base_config,
            "optimizer_args": ["betas=0.9,0.99", "d_coef=2"],
            "down_lr_weight": "sine+0.5",
            "mid_lr_weight": 0.5,
            "v_parameterization": True,
            "min_snr_gamma": 5,
            "loss_type": "huber",
            "reg_data_dir": str(tmp_path / "reg"),
            "caption_tag_dropout_rate": 0.1,
            "clip_skip": 2,
        }
    )
    path = tmp_path / "resolved.yaml"
    path.write_text(resolved_yaml(cfg), encoding="utf-8")
    assert load_config(path) == cfg
