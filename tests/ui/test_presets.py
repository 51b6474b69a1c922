"""Each preset is a config the CLI accepts, on its own and with the small-GPU preset on top."""

from __future__ import annotations

import pytest

from lora_scripts.config import build_config
from lora_scripts.config.root import key_to_section
from lora_scripts.ui.forms import validate
from lora_scripts.ui.i18n import MESSAGES
from lora_scripts.ui.presets import PRESET_LABELS, PRESETS, apply


@pytest.fixture()
def mine(sample_data, tmp_path) -> dict:
    return {
        "base_model": str(tmp_path / "base.safetensors"),
        "train_data_dir": str(sample_data),
        "output_name": "demo",
        "trigger_word": "rcybox",
        "sample_prompts": ["rcybox, a bin"],
    }


@pytest.mark.parametrize(
    "names", [("style",), ("product",), ("character",), ("small_gpu",), ("product", "small_gpu")]
)
def test_every_preset_passes_the_real_config_validation(mine, names):
    values = apply(mine, *names)
    assert validate(values) == {}
    config = build_config(values)
    for name in names:  # every preset value arrives in the typed config (a later preset wins)
        for key, value in PRESETS[name].items():
            if names.index(name) == len(names) - 1 or key not in PRESETS[names[-1]]:
                section = getattr(config, key_to_section()[key])
                assert getattr(section, key) == value, (name, key)


def test_the_presets_differ_where_their_subjects_do():
    assert PRESETS["product"]["flip_aug"] is False and PRESETS["character"]["flip_aug"] is False
    assert PRESETS["style"]["flip_aug"] is True  # a style has no left and right
    assert PRESETS["character"]["lora_rank"] > PRESETS["style"]["lora_rank"]
    small = PRESETS["small_gpu"]
    assert small["gradient_checkpointing"] and small["mixed_precision"] == "fp16" and small["batch_size"] == 1


def test_the_users_values_win_over_a_preset_and_empty_ones_do_not(mine):
    values = apply({**mine, "lora_rank": 4, "epochs": ""}, "character")
    assert values["lora_rank"] == 4 and values["epochs"] == PRESETS["character"]["epochs"]


def test_every_preset_has_a_name_in_both_languages():
    assert set(PRESET_LABELS) == set(PRESETS)
    assert all(key in MESSAGES for key in PRESET_LABELS.values())
