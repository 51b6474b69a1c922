"""resume: auto continues only the same run: a state of another run (other images, init_lora, rank...) is
refused in one sentence naming what differs, never loaded over the new run's weights."""

from __future__ import annotations

import logging
import shutil

import pytest

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.train.run import run_training


@pytest.fixture()
def abandoned(base_config):
    """A run that left training states behind (save_steps with states, then stopped early)."""
    cfg = {**base_config, "max_train_steps": 4, "save_steps": 2, "doctor": "off", "resume": "auto"}
    run_training(build_config(cfg))
    return cfg


def test_resume_auto_continues_the_same_run_and_says_why(abandoned, caplog):
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        result = run_training(build_config({**abandoned, "max_train_steps": 6, "overwrite": True}))
    assert result.steps == 6
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Resumed from")]
    assert resumed and "step 2" in resumed[0] and "same data, base model and settings" in resumed[0]


def test_new_images_and_init_lora_refuse_the_old_state(abandoned, base_config, tmp_path):
    images = tmp_path / "more_images"
    shutil.copytree(base_config["train_data_dir"], images)
    first = next(images.glob("*.png"))
    shutil.copy(first, images / "new_phone.png")
    with open(images / "metadata.csv", "a", encoding="utf-8") as handle:
        handle.write("new_phone.png,neon style, new phone\n")
    # a LoRA from elsewhere (continuing the folder's own LoRA would write test_lora_v2/ instead)
    other = shutil.copy(abandoned["output_dir"] + "/test_lora.safetensors", tmp_path / "other.safetensors")
    incremental = {**abandoned, "train_data_dir": str(images), "init_lora": str(other), "max_train_steps": 6}
    incremental.pop("lora_rank")
    with pytest.raises(ConfigError) as err:
        run_training(build_config({**incremental, "overwrite": True}))
    message = str(err.value)
    assert "from another run" in message and "training images: 6 images" in message and "7 images" in message
    assert "init_lora: none ->" in message


@pytest.mark.parametrize("change", [{"lora_rank": 8}, {"learning_rate": 5e-4}, {"resolution": 128}])
def test_changed_settings_are_named(abandoned, change):
    with pytest.raises(ConfigError) as err:
        run_training(build_config({**abandoned, **change, "max_train_steps": 6, "overwrite": True}))
    key, value = next(iter(change.items()))
    assert f"{key}: " in str(err.value) and f"-> {value}" in str(err.value)
