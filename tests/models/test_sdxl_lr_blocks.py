"""kohya's per-block learning rates on SDXL: 9 input blocks, 3 middle, 9 output (sd-scripts networks/lora.py:
input_blocks_N -> down_lr_weight[N], middle_block_N -> mid_lr_weight[N], output_blocks_N -> up_lr_weight[N],
read off the LoRA's SGM module names), and SD's 12-block lists are refused for SDXL in one sentence (presets
spread over SDXL's 9 blocks: tests/models/test_sdxl_block_presets.py)."""

from __future__ import annotations

import re

import pytest

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.models.registry import load_model
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.train.setup import inject_adapters, param_groups

DOWN = [1 + i / 10 for i in range(9)]
MID = [3.0, 3.5, 4.0]
UP = [5 + i / 10 for i in range(9)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("xl"))["diffusers"]


def _groups(folder, tmp_path, **over):
    cfg = build_config(
        {
            "base_model": str(folder),
            "train_data_dir": str(tmp_path),
            "output_dir": str(tmp_path / "o"),
            "conv_rank": 2,  # resnets and samplers get LoRA too
            "learning_rate": 1.0,
            **over,
        }
    )
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    return model, param_groups(model, trained, cfg.train)


def _kohya_weight(sgm_name: str) -> float:
    m = re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_", sgm_name)
    if m is None:
        return 1.0
    return {"input_blocks": DOWN, "middle_block": MID, "output_blocks": UP}[m.group(1)][int(m.group(2))]


def test_each_lora_parameter_gets_its_sgm_blocks_rate(folder, tmp_path):
    model, groups = _groups(folder, tmp_path, down_lr_weight=DOWN, mid_lr_weight=MID, up_lr_weight=UP)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    seen = set()
    for name, param in model.unet.named_parameters():
        if ".lora_" in name:
            sgm = kohya_name("unet", name.split(".lora_")[0], "sgm")
            assert lr[id(param)] == pytest.approx(_kohya_weight(sgm)), (name, sgm)
            seen.add(_kohya_weight(sgm))
    assert seen >= set(MID) and len(seen & set(DOWN)) >= 6 and len(seen & set(UP)) == 9


def test_one_mid_number_applies_to_all_three(folder, tmp_path):
    model, groups = _groups(folder, tmp_path, mid_lr_weight=0.5)
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    mid = [p for n, p in model.unet.named_parameters() if ".lora_" in n and n.startswith("mid_block.")]
    assert mid and all(lr[id(p)] == 0.5 for p in mid)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"down_lr_weight": [1.0] * 12}, "down_lr_weight has 12 multipliers, but the SDXL UNet has 9 blocks"),
        ({"mid_lr_weight": [1.0, 1.0, 1.0], "base": "sd"}, "mid_lr_weight has 3 multipliers"),
    ],
)
def test_lists_of_the_other_family_are_one_sentence(folder, tiny_model, tmp_path, over, message):
    if over.pop("base", None):
        folder = tiny_model["diffusers"]
    with pytest.raises(ConfigError, match=message) as err:
        _groups(folder, tmp_path, **over)
    assert "\n" not in str(err.value)
