"""kohya's block-weight presets spread over the family's own blocks: SDXL's 9 a side, SD's 12.

kohya (sd-scripts networks/lora.py, get_block_lr_weight) builds a preset with n = the family's blocks a side
(LoRANetwork.NUM_OF_BLOCKS 12, SDXL_NUM_OF_BLOCKS 9): sine is sin(pi/2 * i/(n-1)) for i = 0..n-1, cosine the
same over reversed(range(n)), linear i/(n-1), reverse_linear reversed, zeros 0, and "+x" adds x to each value.
On SDXL, input_blocks_N takes down[N], middle_block_N mid[N], output_blocks_N up[N] (get_block_index). The
expected values below are written from that definition, not read from our code.
"""

from __future__ import annotations

import math
import re

import pytest

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.models.registry import load_model
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.train.setup import inject_adapters, param_groups


def _kohya_preset(spec: str, n: int) -> list[float]:
    name, _, plus = spec.partition("+")
    base = float(plus) if plus else 0.0
    if name == "sine":
        return [math.sin(math.pi * (i / (n - 1)) / 2) + base for i in range(n)]
    if name == "cosine":
        return [math.sin(math.pi * (i / (n - 1)) / 2) + base for i in reversed(range(n))]
    if name == "linear":
        return [i / (n - 1) + base for i in range(n)]
    if name == "reverse_linear":
        return [i / (n - 1) + base for i in reversed(range(n))]
    assert name == "zeros"
    return [0.0 + base] * n


@pytest.fixture(scope="module")
def xl_folder(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("xl"))["diffusers"]


def _config(folder, tmp_path, **over):
    return build_config(
        {
            "base_model": str(folder),
            "train_data_dir": str(tmp_path),
            "output_dir": str(tmp_path / "o"),
            "conv_rank": 2,  # resnets and samplers get LoRA too: every kind of block is numbered
            "learning_rate": 1.0,
            **over,
        }
    )


@pytest.fixture(scope="module")
def xl_model(xl_folder, tmp_path_factory):
    cfg = _config(xl_folder, tmp_path_factory.mktemp("cfg"))
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    return model, trained


def _rates_by_sgm_block(model, groups) -> dict[tuple[str, int], set[float]]:
    """(input_blocks | middle_block | output_blocks | other, N) -> the rates its LoRA parameters got."""
    lr = {id(p): g["lr"] for g in groups for p in g["params"]}
    out: dict[tuple[str, int], set[float]] = {}
    for name, param in model.unet.named_parameters():
        if ".lora_" not in name:
            continue
        sgm = kohya_name("unet", name.split(".lora_")[0], "sgm")
        m = re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_(\d+)_", sgm)
        block = (m.group(1), int(m.group(2))) if m else ("other", 0)
        out.setdefault(block, set()).add(round(lr[id(param)], 9))
    return out


@pytest.mark.parametrize(
    ("down", "up"),
    [("sine", "cosine"), ("linear", "reverse_linear+0.5"), ("zeros+0.25", "sine+1")],
)
def test_sdxl_presets_land_on_the_sgm_blocks_with_kohyas_nine_values(xl_folder, xl_model, tmp_path, down, up):
    model, trained = xl_model
    cfg = _config(xl_folder, tmp_path, down_lr_weight=down, up_lr_weight=up)
    assert cfg.train.down_lr_weight == down  # kept as written: the family decides how many values it gives
    rates = _rates_by_sgm_block(model, param_groups(model, trained, cfg.train))
    want = {"input_blocks": _kohya_preset(down, 9), "output_blocks": _kohya_preset(up, 9)}
    for (kind, n), got in rates.items():
        expected = want[kind][n] if kind in want else 1.0  # middle_block and the rest: untouched
        assert len(got) == 1 and got.pop() == pytest.approx(expected), (kind, n, got)
    assert {n for kind, n in rates if kind == "output_blocks"} == set(range(9))
    assert len({n for kind, n in rates if kind == "input_blocks"}) >= 6  # IN00 (conv_in) has no LoRA
    assert ("middle_block", 1) in rates


def test_a_preset_on_sd_still_spreads_over_twelve_blocks(tiny_model, tmp_path):
    cfg = _config(tiny_model["diffusers"], tmp_path, up_lr_weight="sine")
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    lr = {id(p): g["lr"] for g in param_groups(model, trained, cfg.train) for p in g["params"]}
    sine12 = _kohya_preset("sine", 12)
    seen = set()
    for name, param in model.unet.named_parameters():  # SD's OUT(3i + j), an upsampler OUT(3i + 2)
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\..*\.lora_", name)
        if m:
            i, j = int(m.group(1)), 2 if m.group(2) == "upsamplers" else int(m.group(3))
            assert lr[id(param)] == pytest.approx(sine12[3 * i + j]), name
            seen.add(3 * i + j)
    assert seen == set(range(12))


@pytest.mark.parametrize(
    ("over", "sentence"),
    [
        ({"up_lr_weight": [1.0] * 12}, "up_lr_weight has 12 multipliers, but the SDXL UNet has 9 blocks a"),
        ({"down_lr_weight": "1,1,1,1,1,1,1,1,1", "base": "sd"}, "the SD 1.x UNet has 12 blocks a side"),
    ],
)
def test_a_list_for_the_other_family_names_this_familys_count(
    xl_folder, tiny_model, tmp_path, over, sentence
):
    folder = tiny_model["diffusers"] if over.pop("base", None) else xl_folder
    cfg = _config(folder, tmp_path, **over)
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    with pytest.raises(ConfigError, match=sentence) as err:
        param_groups(model, trained, cfg.train)
    message = str(err.value)
    assert "\n" not in message and message.count(". ") <= 1 and "preset" in message


def test_the_web_ui_list_box_may_hold_a_preset(tmp_path, xl_folder):
    cfg = _config(xl_folder, tmp_path, down_lr_weight=["cosine+0.5"], up_lr_weight=["1,1,1,1,1,1,1,1,0"])
    assert cfg.train.down_lr_weight == "cosine+0.5"
    assert cfg.train.up_lr_weight == [1.0] * 8 + [0.0]
    with pytest.raises(ConfigError, match="from 0 to 99"):
        _config(xl_folder, tmp_path, down_lr_weight="sine+-1")
