"""LoRA+ and kohya's per-block learning rates: which learning rate each LoRA parameter gets."""

from __future__ import annotations

import math
import re

import pytest
import torch
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.models.loader import load_components
from lora_scripts.models.lr_blocks import side_weights
from lora_scripts.models.sd import SD1_INFO, StableDiffusion
from lora_scripts.train.run import run_training
from lora_scripts.train.setup import inject_adapters, param_groups

# kohya's lora.py numbering, on its module names (lora_unet_down_blocks_1_attentions_0_...): down blocks
# index the 12-list at 1 + 3i + j (samplers 3i + 2), up blocks at 3i + j, the mid block is its own weight
KOHYA_UPDOWN = re.compile(r"(up|down)_blocks_(\d+)_(resnets|upsamplers|downsamplers|attentions)_(\d+)_")


def _kohya_weight(kohya_name: str, down, mid, up) -> float:
    m = KOHYA_UPDOWN.search(kohya_name)
    if m:
        side, i, kind, j = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        idx = 3 * i + 2 if kind in ("upsamplers", "downsamplers") else 3 * i + j
        return down[1 + idx] if side == "down" else up[idx]
    return mid if "mid_block_" in kohya_name else 1.0


def _groups(base_config, **over):
    cfg = build_config({**base_config, **over})
    model = StableDiffusion(load_components(cfg.model))
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    return cfg, model, trained, param_groups(model, trained, cfg.train)


def _lr_of(groups) -> dict[int, float]:
    out: dict[int, float] = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = g["lr"]
    return out


def test_loraplus_gives_b_matrices_ratio_times_the_rate(base_config):
    cfg, model, trained, groups = _groups(
        base_config, loraplus_lr_ratio=16, train_text_encoder=True, text_encoder_lr=2e-4
    )
    lr = _lr_of(groups)
    seen = {"A": 0, "B": 0}
    for component, base in (("unet", 1e-3), ("te", 2e-4)):
        for name, p in model.adapter_modules()[component].named_parameters():
            if ".lora_B." in name:
                assert lr[id(p)] == pytest.approx(base * 16), name
                seen["B"] += 1
            elif ".lora_A." in name:
                assert lr[id(p)] == pytest.approx(base), name
                seen["A"] += 1
            else:
                assert id(p) not in lr  # the frozen base is in no group
    assert seen["A"] == seen["B"] > 0 and len(lr) == seen["A"] + seen["B"]
    assert groups[0]["lr"] == pytest.approx(1e-3)  # the logged rate is the UNet's own

    _, _, _, plain = _groups(base_config, train_text_encoder=True, text_encoder_lr=2e-4)
    assert sorted(g["lr"] for g in plain) == pytest.approx([2e-4, 1e-3])


def test_block_lr_weights_follow_kohyas_block_numbering(base_config, tmp_path):
    down = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1, 1.2]
    up = [2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1]
    cfg, model, _, groups = _groups(
        base_config,
        conv_rank=2,  # resnets and samplers get LoRA too: every kind of block is numbered
        down_lr_weight=",".join(map(str, down)),  # kohya's network_args form
        mid_lr_weight=5.0,
        up_lr_weight=up,
    )
    lr = _lr_of(groups)
    for name, p in model.unet.named_parameters():
        if id(p) not in lr:
            continue
        module = name.split(".lora_")[0]
        kohya = "lora_unet_" + module.replace(".", "_") + "_"
        assert lr[id(p)] == pytest.approx(1e-3 * _kohya_weight(kohya, down, 5.0, up)), name
    # every block of the SD topology carries LoRA here; IN00 (conv_in) has none in kohya's numbering either
    rates = {round(v / 1e-3, 6) for v in lr.values()}
    assert rates - {1.0} == set(down[1:]) | {5.0} | set(up)
    assert any("samplers" in n for n, _ in model.unet.named_parameters() if ".lora_A." in n)


def test_block_weight_zero_leaves_a_block_untrained(base_config):
    cfg = build_config(
        {**base_config, "max_train_steps": 2, "down_lr_weight": [0.0] * 12, "mid_lr_weight": 0.0}
    )
    result = run_training(cfg)
    ups = {k: v for k, v in load_file(result.lora_path).items() if k.endswith("lora_up.weight")}
    down_mid = {k: v for k, v in ups.items() if "_down_blocks_" in k or "_mid_block_" in k}
    up_side = {k: v for k, v in ups.items() if "_up_blocks_" in k}
    assert down_mid and up_side
    assert all(not v.any() for v in down_mid.values())  # lr 0: still at B's zero init
    assert sum(bool(v.any()) for v in up_side.values()) > len(up_side) // 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1.0] * 11, "12 multipliers.*it has 11"),
        ("1,1,x", "12 numbers"),
        ([1.0] * 11 + [-1.0], "between 0 and 100"),
    ],
)
def test_bad_block_weights_are_one_sentence(base_config, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_config({**base_config, "down_lr_weight": value})
    assert "down_lr_weight" in str(err.value) and "\n" not in str(err.value)


def test_block_weights_on_a_model_without_unet_blocks_are_refused(base_config):
    cfg, model, trained, _ = _groups(base_config)
    cfg = build_config({**base_config, "up_lr_weight": [1.0] * 12})

    class NoBlocks:  # a family without lr_block (the LLM family has none)
        info = model.info

        def adapter_modules(self):
            return model.adapter_modules()

    with pytest.raises(ConfigError, match="per-block learning rates"):
        param_groups(NoBlocks(), trained, cfg.train)


def test_first_group_parameters_keep_training_with_default_settings(base_config):
    _, model, _, groups = _groups(base_config)
    assert len(groups) == 1 and groups[0]["lr"] == pytest.approx(1e-3)
    trainable = [p for _, p in model.unet.named_parameters() if p.requires_grad]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in trainable}
    assert all(p.dtype == torch.float32 for p in trainable)


def test_the_unscaled_group_comes_first_for_the_logged_rate(base_config):
    """The loop logs the first group's rate: learning_rate, though IN01 comes first in the UNet."""
    _, _, _, groups = _groups(base_config, down_lr_weight=[0.5] * 12)
    assert groups[0]["lr"] == pytest.approx(1e-3)
    assert sorted(g["lr"] for g in groups) == pytest.approx([5e-4, 1e-3])


def test_loraplus_on_the_llm_route(tmp_path):
    """loraplus_lr_ratio is not an image-only key: peft's LoRA on a chat model has the same A/B layers."""
    import json

    from lora_scripts.models.registry import load_model
    from lora_scripts.models.tiny_llm import save_tiny_llm

    base = save_tiny_llm(tmp_path / "tiny-llama", arch="llama")
    chats = tmp_path / "chats.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    chats.write_text(json.dumps(row) + "\n", encoding="utf-8")
    cfg = build_config(
        {"base_model": str(base), "dataset": str(chats), "loraplus_lr_ratio": 4, "learning_rate": 1e-3}
    )
    assert cfg.route == "llm"
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    lr = _lr_of(param_groups(model, trained, cfg.train))
    named = list(model.adapter_modules()[trained[0]].named_parameters())
    b = [p for n, p in named if ".lora_B." in n]
    a = [p for n, p in named if ".lora_A." in n]
    assert a and len(a) == len(b) and len(lr) == len(a) + len(b)
    assert all(lr[id(p)] == pytest.approx(4e-3) for p in b)
    assert all(lr[id(p)] == pytest.approx(1e-3) for p in a)


def test_kohyas_block_weight_presets(base_config):
    def weights(value):  # the config keeps the preset; it spreads over SD's 12 blocks once the model is known
        kept = build_config({**base_config, "up_lr_weight": value}).train.up_lr_weight
        return side_weights(kept, SD1_INFO.lr_blocks[0])

    quarter = [math.sin(math.pi / 2 * i / 11) for i in range(12)]  # a quarter sine wave, 0 to 1
    assert weights("sine") == pytest.approx(quarter)
    assert weights("cosine") == pytest.approx(quarter[::-1])
    assert weights("linear") == pytest.approx([i / 11 for i in range(12)])
    assert weights("reverse_linear+0.5") == pytest.approx([(11 - i) / 11 + 0.5 for i in range(12)])
    assert weights("zeros+0.25") == pytest.approx([0.25] * 12)
    with pytest.raises(ConfigError, match="a preset with a number added"):
        weights("sine+much")
    with pytest.raises(ConfigError, match="or a preset"):
        weights("wavy")
