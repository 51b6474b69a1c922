"""The mistakes a user makes most (a YAML typo, a wrong model path, a bad weight or precision) are said before
torch, diffusers and peft are imported: one sentence at once instead of after ~8 s of imports. Each case
runs the real app in a fresh interpreter, which then reports whether torch was imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO_BASE = Path(__file__).parents[1] / "assets" / "demo-base" / "demo-base.safetensors"  # shipped

PROBE = """
import sys
from lora_scripts.cli import app
try:
    app(args=sys.argv[1:], prog_name="lora-scripts")
except SystemExit as exc:
    print("exit", exc.code, "torch imported" if "torch" in sys.modules else "torch not imported")
"""


def _probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)


def _config(tmp_path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


CASES = {
    "train: YAML typo": (
        lambda t: ["train", "--config", _config(t, "base_model: x\nlerning_rate: 1e-4\n")],
        "lerning_rate",
    ),
    "train: missing base_model": (
        lambda t: [
            "train",
            "--config",
            _config(t, f"base_model: {t}/nope.safetensors\ntrain_data_dir: {t}\n"),
        ],
        "does not exist",
    ),
    "train: missing --accelerate-config": (
        lambda t: [
            "train",
            "--config",
            _config(t, "base_model: x\n"),
            "--accelerate-config",
            f"{t}/nope.yaml",
        ],
        "is not a file",
    ),
    "train: missing vae": (
        lambda t: [
            "train",
            "--config",
            _config(t, f"base_model: {DEMO_BASE}\ntrain_data_dir: {t}\nvae: {t}/nope.safetensors\n"),
        ],
        "VAE",
    ),
    "generate: missing --vae": (
        lambda t: ["generate", "-m", str(DEMO_BASE), "--vae", f"{t}/nope.safetensors", "phone"],
        "VAE",
    ),
    "generate: missing -m": (
        lambda t: ["generate", "-m", f"{t}/nope.safetensors", "phone"],
        "does not exist",
    ),
    "generate: malformed <lora> tag": (
        lambda t: ["generate", "-m", str(DEMO_BASE), "<lora:fire:abc> phone"],
        "'<lora:fire:abc>' has the weight 'abc', which is not a number",
    ),
    "merge-loras: a weight that is no number": (
        lambda t: ["lora", "merge-loras", "a.safetensors:abc", "b.safetensors", "-o", f"{t}/x.safetensors"],
        "is not a weight",
    ),
    "merge: missing base": (
        lambda t: ["lora", "merge", f"{t}/nope.safetensors", "a.safetensors", "-o", f"{t}/x.safetensors"],
        "does not exist",
    ),
    "resize: unknown precision": (
        lambda t: [
            "lora",
            "resize",
            "a.safetensors",
            "-o",
            f"{t}/y.safetensors",
            "--rank",
            "2",
            "--precision",
            "fp17",
        ],
        "--precision must be one of",
    ),
    "extract: missing tuned model": (
        lambda t: [
            "lora",
            "extract",
            f"{t}/tuned.safetensors",
            f"{t}/base.safetensors",
            "-o",
            f"{t}/e.safetensors",
        ],
        "does not exist",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_common_mistake_is_one_sentence_before_torch_is_imported(case, tmp_path):
    args, words = CASES[case]
    done = _probe(*args(tmp_path))
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0], done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip().endswith("exit 2 torch not imported"), done.stdout + done.stderr
