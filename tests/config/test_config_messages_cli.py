"""Config messages as the user sees them from `lora-scripts train`: one sentence naming the right place."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_scripts.config import build_config, load_config
from lora_scripts.errors import ConfigError

BASE = "base_model: m.safetensors\ntrain_data_dir: d\n"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _one_error(done) -> str:
    """The single `Error:` line of a refused run (exit 2, no traceback)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def test_yaml_key_written_twice_names_key_and_both_lines(tmp_path, run_cli):
    path = _config(tmp_path, BASE + "learning_rate: 1e-4\nlora_rank: 8\nlearning_rate: 5e-4\n")
    error = _one_error(run_cli("train", "--config", str(path), "--dry-run"))
    assert "'learning_rate'" in error and "lines 3 and 5" in error and "cfg.yaml" in error, error
    assert not (tmp_path / "output").exists()


@pytest.mark.parametrize(
    "override, words",
    [
        ("learning_rate=fast", ["command-line override 'learning_rate=fast'", "a number"]),
        ("lerning_rate=1e-4", ["command-line override 'lerning_rate=1e-4'", "Did you mean 'learning_rate'"]),
        ("lora_rank=[", ["command-line override 'lora_rank=['"]),
    ],
)
def test_override_errors_name_the_override_not_the_yaml(tmp_path, run_cli, override, words):
    path = _config(tmp_path, BASE)
    error = _one_error(run_cli("train", "--config", str(path), override, "--dry-run"))
    assert all(word in error for word in words), error
    assert "in cfg.yaml" not in error, error


def test_huge_whole_number_is_a_plain_sentence(tmp_path, run_cli):
    path = _config(tmp_path, BASE + "max_train_steps: 1.0e+30\n")
    error = _one_error(run_cli("train", "--config", str(path), "--dry-run"))
    assert "max_train_steps" in error and "whole number" in error, error
    assert "Unable to parse" not in error and "Input should" not in error, error


def test_a_kohya_toml_key_that_cannot_be_honoured_is_one_line(tmp_path, run_cli):
    path = tmp_path / "kohya.toml"
    path.write_text(
        '[model_arguments]\npretrained_model_name_or_path = "m.safetensors"\n'
        '[additional_network_arguments]\nnetwork_module = "networks.lora"\n'
        'network_args = ["conv_dim=4", "rank_dropout=0.1"]\n[dataset_arguments]\ntrain_data_dir = "d"\n',
        encoding="utf-8",
    )
    error = _one_error(run_cli("train", "--config", str(path), "--dry-run"))
    assert "Key 'network_args' in " in error and "kohya.toml has rank_dropout=0.1" in error, error


# --- the same rules, in-process, for the shapes that do not need a process each ---


def test_duplicate_keys_inside_a_section_and_yaml_merge_keys(tmp_path):
    nested = _config(tmp_path, BASE + "train:\n  epochs: 2\n  seed: 1\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"'epochs' is set twice in .*cfg.yaml \(lines 4 and 6\)"):
        load_config(nested)
    # a YAML merge key's values may be overridden: not a key written twice
    merged = _config(tmp_path, BASE + "train: {<<: {epochs: 2, seed: 5}, epochs: 3}\n")
    cfg = load_config(merged)
    assert (cfg.train.epochs, cfg.train.seed) == (3, 5)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("max_train_steps", 1e30, ["whole number", "1e+30 is too large"]),
        ("max_train_steps", "1e30", ["whole number written with digits", "1e30"]),
        ("seed", float("nan"), ["an ordinary number, not nan or inf"]),
        ("lora_alpha", float("inf"), ["lora_alpha", "not nan or inf"]),  # was accepted: inf LoRA scale
        ("batch_size", 1e30, ["too large", "or auto"]),
        ("sample_steps", [1, 2], ["a whole number"]),
    ],
)
def test_no_raw_pydantic_text(key, value, words):
    with pytest.raises(ConfigError) as info:
        build_config({"base_model": "m", "train_data_dir": "d", key: value}, source="cfg.yaml")
    message = str(info.value)
    assert all(word in message for word in words), message
    for raw in ("Input should", "Unable to parse", "valid integer", "exceeded maximum size"):
        assert raw not in message, message


def test_override_that_empties_a_required_key(tmp_path):
    with pytest.raises(ConfigError, match="command-line override 'base_model='"):
        load_config(_config(tmp_path, BASE), ["base_model="])


def test_override_in_a_cross_key_check_is_named(tmp_path):
    with pytest.raises(ConfigError, match="command-line override 'sample_every_n_steps=5'"):
        load_config(_config(tmp_path, BASE), ["sample_every_n_steps=5"])
