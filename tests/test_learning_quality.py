"""Proof that it learns (issue 10): the demo's LoRA, trained by the real CLI on the shipped base, learns the
style and not generic denoising; measured with diffusers' own loader by bench/learning_quality.py, code
independent of the trainer. And a deliberately over-trained run raises the overfitting alarm."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.learning_quality import measure  # noqa: E402
from lora_scripts.demo import write_style_images  # noqa: E402
from lora_scripts.models.demo_base import demo_base_files  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, run_cli):
    # (importing tests.conftest here ran it a second time: its caches then pointed at a new folder)
    out = tmp_path_factory.mktemp("learning") / "demo"
    result = run_cli("demo", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout + result.stderr


def test_the_lora_learns_the_style_not_generic_denoising(demo_run):
    out, _ = demo_run
    m = measure(out)
    style, unrelated = m["loss"]["style_held_out"]["change_pct"], m["loss"]["unrelated"]["change_pct"]
    assert style < 0, f"held-out style loss did not fall: {style:+.1f} %"
    assert m["style_specific_points"] >= 10, f"style {style:+.1f} % vs unrelated {unrelated:+.1f} %"
    moved = m["colour_toward_style"]
    assert moved["1"] >= 30, f"mean colour moved {moved['1']} RGB units toward the style at weight 1.0"
    assert 0.25 * moved["1"] <= moved["0.5"] <= 0.85 * moved["1"], moved  # about half at weight 0.5
    assert m["weight0_bit_exact"], "LoRA weight 0 did not reproduce the base bit for bit"


def test_the_demo_prints_held_out_loss_and_writes_the_comparison(demo_run):
    """What `lora-scripts demo` (the README's first command) leaves: the LoRA, the captioned images, and
    per prompt a base / weight 0.5 / weight 1.0 image, all different, beside the comparison sheet."""
    out, output = demo_run
    assert "held-out" in output.lower()
    assert (out / "lora" / "tech_style_demo.safetensors").is_file()
    assert (out / "images" / "metadata.csv").is_file()
    samples = out / "samples"
    assert len(list(samples.glob("prompt*_lora*.png"))) == 12
    for prompt in range(4):
        base, half, full = (
            np.asarray(Image.open(samples / f"prompt{prompt}_lora{w}.png").convert("RGB"), dtype=np.int16)
            for w in ("0.0", "0.5", "1.0")
        )
        assert base.shape == full.shape == (64, 64, 3)
        assert np.abs(base - full).max() > 0, "the LoRA changed nothing in the demo image"
        assert np.abs(half - full).max() > 0, "weights 0.5 and 1.0 drew the same image"
    assert Image.open(samples / "base_vs_lora.png").size[0] > 3 * 128  # labels + three columns


def test_an_over_trained_run_raises_the_overfitting_alarm(tmp_path, cli):
    """Two images, a high learning rate, many epochs: the held-out style loss turns up while the training
    loss keeps falling, and the log says so."""
    write_style_images(tmp_path / "two", ("phone",), 2, seed=3)
    write_style_images(tmp_path / "held", ("tablet", "watch"), 4, seed=4)
    config = {
        "base_model": str(demo_base_files()["single_file"]),
        "train_data_dir": str(tmp_path / "two"),
        "validation_dir": str(tmp_path / "held"),
        "validation_steps": 25,
        "output_dir": str(tmp_path / "out"),
        "output_name": "overfit",
        "resolution": 64,
        "min_bucket_reso": 64,
        "max_bucket_reso": 64,
        "bucket_reso_steps": 64,
        "lora_rank": 16,
        "lora_alpha": 16,
        "batch_size": 2,
        "max_train_steps": 250,  # the alarm: at step 150 on the reference machine (held-out loss least at 75)
        "learning_rate": 5e-3,
        "save_steps": 100,
        "device": "cpu",
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = cli("train", "--config", str(tmp_path / "c.yaml"))  # in-process: the log is the point
    assert result.returncode == 0, result.stdout + result.stderr
    log = (tmp_path / "out" / "train.log").read_text(encoding="utf-8")
    assert "overfitting" in log.lower(), log[-3000:]


def test_the_example_demo_config_is_what_the_demo_trains():
    from lora_scripts.demo import demo_config

    expected = demo_config(Path("demo_run"), Path("assets/demo-base/demo-base.safetensors"), 300)
    assert yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text(encoding="utf-8")) == expected
