"""The `lora-scripts` command: training end to end, --dry-run, and one sentence per bad input.

Most tests call the Typer app in-process (`cli`, no interpreter start); `run_cli` starts a real process where
the process is the point: the interpreter's traceback, the exit status a shell sees, the seed entry point, and
the environment a child process inherits."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image
from safetensors.torch import load_file


def _config(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "my_lora_config.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.mark.slow
def test_train_from_cli_writes_the_lora(cli, base_config, tmp_path):
    values = {**base_config, "lora_rank": 3, "max_train_steps": 2, "save_steps": 1}  # 3: not a default
    result = cli("train", "--config", str(_config(tmp_path, values)))
    assert result.returncode == 0, result.stderr
    out = Path(base_config["output_dir"])
    assert (out / "test_lora-step000001.safetensors").is_file()
    tensors = load_file(out / "test_lora.safetensors")  # a complete safetensors file
    downs = {k: v for k, v in tensors.items() if k.endswith(".lora_down.weight")}
    ups = {k: v for k, v in tensors.items() if k.endswith(".lora_up.weight")}
    assert downs and all(v.shape[0] == 3 for v in downs.values())  # the config's rank
    assert ups and all(v.shape[1] == 3 for v in ups.values())
    assert any(v.abs().sum() > 0 for v in ups.values())  # trained: B starts at zero
    assert "LoRA saved" in result.stdout + result.stderr
    assert "Training" in result.stderr  # the progress bar


def test_dry_run_prints_resolved_config_and_data(cli, base_config, tmp_path):
    result = cli("train", "--config", str(_config(tmp_path, base_config)), "--dry-run")
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
def test_bad_input_is_one_sentence_exit_2_nothing_written(cli, base_config, tmp_path, case):
    cfg, names = _bad(case, base_config, tmp_path)
    result = cli("train", "--config", str(_config(tmp_path, cfg)))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and names in errors[0]  # one sentence naming the thing (soft-wrapped: one line)
    assert not Path(base_config["output_dir"]).exists()


def test_real_process_exits_2_with_one_sentence(run_cli, base_config, tmp_path):
    cfg = {**base_config, "base_model": str(tmp_path / "nope.safetensors")}
    result = run_cli("train", "--config", str(_config(tmp_path, cfg)))
    assert result.returncode == 2, result.stderr  # the status a shell or the UI's job runner sees
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "nope.safetensors" in errors[0] and "Traceback" not in result.stderr


def test_existing_lora_is_not_overwritten(cli, base_config, tmp_path):
    out = Path(base_config["output_dir"])
    out.mkdir()
    (out / "test_lora.safetensors").write_bytes(b"precious")
    result = cli("train", "--config", str(_config(tmp_path, base_config)))
    assert result.returncode == 2 and "overwrite" in result.stderr
    assert (out / "test_lora.safetensors").read_bytes() == b"precious"


def test_exif_rotated_and_odd_modes_train(cli, base_config, tmp_path):
    data = Path(base_config["train_data_dir"])
    Image.new("CMYK", (80, 64), (10, 200, 30, 0)).save(data / "cmyk.jpg")
    Image.new("P", (64, 80)).save(data / "palette.png", transparency=0)
    result = cli(
        "train", "--config", str(_config(tmp_path, {**base_config, "max_train_steps": 1})), "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "8 images" in result.stdout + result.stderr


def test_debug_shows_the_traceback(run_cli, base_config, tmp_path):
    cfg = {**base_config, "base_model": str(tmp_path / "nope.safetensors")}
    result = run_cli("train", "--config", str(_config(tmp_path, cfg)), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "ModelError" in result.stderr


def test_seed_entry_point_train_py(base_config, tmp_path):
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


def test_caches_are_per_session_in_tests_and_their_processes(session_cache, tiny_model):
    """No test depends on ~/.cache: HF and project caches point into this run's folder, here and in
    the processes tests start."""
    import huggingface_hub.constants

    assert Path(huggingface_hub.constants.HF_HUB_CACHE).is_relative_to(session_cache)  # set before HF import
    assert (session_cache / "lora-scripts" / "clip_tokenizer" / "vocab.json").is_file()  # tiny_model built it
    code = (
        "import os, huggingface_hub.constants as c; from lora_scripts.models.tokenizer import cache_dir; "
        "print(c.HF_HUB_CACHE); print(c.HF_HOME); print(cache_dir()); print(os.environ['XDG_CACHE_HOME'])"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    paths = child.stdout.split()
    assert len(paths) == 4 and all(Path(p).is_relative_to(session_cache) for p in paths), paths


def test_brackets_in_an_error_are_shown_as_written(cli, tmp_path, base_config):
    """Rich read '[a, 5]' in an error as markup and printed "'sample_prompts='" with the value gone."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(base_config), encoding="utf-8")
    proc = cli("train", "--config", str(config), "sample_prompts=[a, 5]", "--dry-run")
    assert proc.returncode == 2 and "[a, 5]" in proc.stderr, proc.stderr
