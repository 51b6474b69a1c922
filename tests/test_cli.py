"""The real `lora-scripts` process: training end to end, --dry-run, and one sentence per bad input."""

from pathlib import Path

import pytest
import yaml
from PIL import Image


def _config(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "my_lora_config.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_from_cli_writes_the_lora(run_cli, base_config, tmp_path):
    result = run_cli("train", "--config", str(_config(tmp_path, {**base_config, "save_steps": 2})))
    assert result.returncode == 0, result.stderr
    out = Path(base_config["output_dir"])
    assert (out / "test_lora.safetensors").is_file() and (out / "test_lora-step000002.safetensors").is_file()
    assert "LoRA saved" in result.stdout + result.stderr
    assert "Training" in result.stderr  # the progress bar


def test_dry_run_prints_resolved_config_and_data(run_cli, base_config, tmp_path):
    result = run_cli("train", "--config", str(_config(tmp_path, base_config)), "--dry-run")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "gradient_accumulation_steps: 1" in text and "6 images" in text
    assert not Path(base_config["output_dir"]).exists()


def _bad(case: str, cfg: dict, tmp_path: Path) -> tuple[dict, str]:
    data = Path(cfg["train_data_dir"])
    if case == "missing_base_model":
        return {**cfg, "base_model": str(tmp_path / "nope.safetensors")}, "nope.safetensors"
    if case == "missing_data_dir":
        return {**cfg, "train_data_dir": str(tmp_path / "no_such_dir")}, "no_such_dir"
    if case == "broken_image":
        (data / "broken.png").write_bytes(b"this is not a png")
        return cfg, "broken.png"
    if case == "metadata_row_missing_file":
        with open(data / "metadata.csv", "a", encoding="utf-8") as handle:
            handle.write("ghost.png,a ghost\n")
        return cfg, "ghost.png"
    if case == "empty_dataset":
        empty = tmp_path / "empty"
        empty.mkdir()
        return {**cfg, "train_data_dir": str(empty)}, "empty"
    if case == "non_numeric_lr":
        return {**cfg, "learning_rate": "fast"}, "learning_rate"
    if case == "unknown_key":
        return {**cfg, "lora_rnak": 4}, "lora_rank"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing_base_model",
        "missing_data_dir",
        "broken_image",
        "metadata_row_missing_file",
        "empty_dataset",
        "non_numeric_lr",
        "unknown_key",
    ],
)
def test_bad_input_is_one_sentence_exit_2_nothing_written(run_cli, base_config, tmp_path, case):
    cfg, names = _bad(case, base_config, tmp_path)
    result = run_cli("train", "--config", str(_config(tmp_path, cfg)))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and names in errors[0]  # one sentence naming the thing (soft-wrapped: one line)
    assert not Path(base_config["output_dir"]).exists()


def test_existing_lora_is_not_overwritten(run_cli, base_config, tmp_path):
    out = Path(base_config["output_dir"])
    out.mkdir()
    (out / "test_lora.safetensors").write_bytes(b"precious")
    result = run_cli("train", "--config", str(_config(tmp_path, base_config)))
    assert result.returncode == 2 and "overwrite" in result.stderr
    assert (out / "test_lora.safetensors").read_bytes() == b"precious"


def test_exif_rotated_and_odd_modes_train(run_cli, base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    Image.new("CMYK", (80, 64), (10, 200, 30, 0)).save(data / "cmyk.jpg")
    Image.new("P", (64, 80)).save(data / "palette.png", transparency=0)
    result = run_cli(
        "train", "--config", str(_config(tmp_path, {**base_config, "max_train_steps": 1})), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "8 images" in result.stdout + result.stderr


def test_debug_shows_the_traceback(run_cli, base_config, tmp_path):
    cfg = {**base_config, "base_model": str(tmp_path / "nope.safetensors")}
    result = run_cli("train", "--config", str(_config(tmp_path, cfg)), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ModelError" in result.stderr


def test_seed_entry_point_train_py(base_config, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    result = subprocess.run(
        [
            sys.executable,
            str(root / "train.py"),
            "--config",
            str(_config(tmp_path, base_config)),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "6 images" in result.stdout + result.stderr


@pytest.mark.slow
def test_demo_runs_end_to_end(run_cli, tmp_path):
    result = run_cli("demo", "--out", str(tmp_path / "demo"), "--steps", "6")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo" / "lora" / "tech_style_demo.safetensors").is_file()
    assert (tmp_path / "demo" / "samples" / "base_vs_lora.png").is_file()
    assert (tmp_path / "demo" / "images" / "metadata.csv").is_file()
    assert (tmp_path / "demo" / "models" / "tiny-sd15-diffusers" / "unet" / "config.json").is_file()
