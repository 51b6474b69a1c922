"""scale_weight_norms: kohya's max-norm regularisation (networks/lora.py apply_max_norm_regularization) on
peft's LoRA/LoCon layers, checked against kohya's formula written out here, and in a real run on the tiny SD
model: after training every module's update is within the maximum, and without the option some is not."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.inject.lora import inject, lora_layers
from lora_scripts.inject.max_norm import apply_max_norm
from lora_scripts.tools.lora_io import read_lora
from lora_scripts.train.run import run_training


def kohya_updown(down: torch.Tensor, up: torch.Tensor, alpha: float) -> torch.Tensor:
    """sd-scripts networks/lora.py, apply_max_norm_regularization: the module's update as kohya forms it."""
    scale = alpha / down.shape[0]
    if up.shape[2:] == (1, 1) and down.shape[2:] == (1, 1):
        updown = (up.squeeze(2).squeeze(2) @ down.squeeze(2).squeeze(2)).unsqueeze(2).unsqueeze(3)
    elif up.shape[2:] == (3, 3) or down.shape[2:] == (3, 3):
        updown = torch.nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
    else:
        updown = up @ down
    return updown * scale


def kohya_max_norm(down, up, alpha, max_norm):
    """(down, up, scaled?, norm after) exactly as kohya's loop body computes them."""
    updown = kohya_updown(down, up, alpha)
    norm = updown.norm().clamp(min=max_norm / 2)
    desired = torch.clamp(norm, max=max_norm)
    ratio = desired.cpu() / norm.cpu()
    sqrt_ratio = ratio**0.5
    if ratio != 1:
        down, up = down * sqrt_ratio, up * sqrt_ratio
    return down, up, bool(ratio != 1), (updown.norm() * ratio).item()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 5)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pointwise = nn.Conv2d(4, 4, 1)


def test_the_scaling_is_kohyas_on_hand_made_pairs():
    torch.manual_seed(0)
    model = inject(
        Block(), {"proj": 2, "conv": 3, "pointwise": 2}, {"proj": 1.0, "conv": 3.0, "pointwise": 4.0}
    )
    layers = lora_layers(model)
    given = {}
    for name, layer in layers.items():
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        with torch.no_grad():
            a.copy_(torch.randn_like(a))
            b.copy_(torch.randn_like(b) * (0.05 if name == "pointwise" else 1.0))  # one stays under the max
        given[name] = (a.detach().clone(), b.detach().clone(), layer.scaling["default"] * layer.r["default"])
    max_norm = 1.5
    expected = {name: kohya_max_norm(*pair, max_norm) for name, pair in given.items()}
    stats = apply_max_norm([model], max_norm)
    for name, (down, up, _scaled, _norm) in expected.items():
        layer = layers[name]
        torch.testing.assert_close(layer.lora_A["default"].weight, down)
        torch.testing.assert_close(layer.lora_B["default"].weight, up)
    norms = [e[3] for e in expected.values()]
    assert stats.keys_scaled == sum(e[2] for e in expected.values()) == 2
    assert stats.mean_norm == pytest.approx(sum(norms) / 3) and stats.max_norm == pytest.approx(max(norms))
    assert not expected["pointwise"][2] and expected["conv"][3] == pytest.approx(max_norm)


def _train(base_config, tmp_path, name, **extra):
    config = {
        **base_config,
        "output_dir": str(tmp_path / name),
        "conv_rank": 2,  # LoCon: the 3x3 convs' updates are measured too
        "lora_alpha": 2,
        "max_train_steps": 3,
        "learning_rate": 5e-2,
        "save_precision": "float",
        **extra,
    }
    result = run_training(build_config(config))
    modules = read_lora(result.lora_path).modules
    norms = {n: kohya_updown(w.down, w.up, w.alpha).norm().item() for n, w in modules.items()}
    return result, norms


def test_after_training_no_module_exceeds_the_max_norm(base_config, tmp_path):
    max_norm = 0.05
    _, free = _train(base_config, tmp_path, "free")
    assert max(free.values()) > 2 * max_norm  # without the option the updates do grow past it
    result, held = _train(base_config, tmp_path, "held", scale_weight_norms=max_norm)
    assert held.keys() == free.keys() and any(".conv" in n or "conv" in n for n in held)
    assert max(held.values()) <= max_norm * (1 + 1e-4)
    events = [json.loads(line) for line in (tmp_path / "held" / "progress.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 3 and all(e["max_norm/keys_scaled"] > 0 for e in steps[1:])
    assert steps[-1]["max_norm/max_key_norm"] <= max_norm * (1 + 1e-4) and steps[-1]["norm/avg_key_norm"] > 0
    log = (tmp_path / "held" / "train.log").read_text(encoding="utf-8")
    assert "keys scaled" in log and "average key norm" in log


@pytest.mark.parametrize(
    "extra, word",
    [({"network_type": "loha"}, "not loha"), ({"network_type": "lora", "dora_wd": True}, "not dora")],
)
def test_other_network_types_are_refused_in_one_sentence(base_config, extra, word):
    with pytest.raises(ConfigError) as err:
        build_config({**base_config, "scale_weight_norms": 1, **extra})
    message = str(err.value)
    assert "scale_weight_norms works with network_type lora or locon only" in message and word in message
    assert "\n" not in message and message.count(". ") == 0
