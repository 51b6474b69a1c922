"""Optimisers (each from its own library) and learning-rate schedules (their formulas written out here)."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.config.train import OPTIMIZER_LIBRARIES
from lora_scripts.errors import ConfigError
from lora_scripts.train.optim import make_lr_scheduler, make_optimizer
from lora_scripts.train.run import run_training

MINIMAL = {"base_model": "x.safetensors", "train_data_dir": "d"}
LIBRARY_CLASS = {  # what each name must build, imported here from the library itself
    "adamw": lambda: torch.optim.AdamW,
    "sgd": lambda: torch.optim.SGD,
    "adamw8bit": lambda: __import__("bitsandbytes.optim", fromlist=["AdamW8bit"]).AdamW8bit,
    "adafactor": lambda: __import__("transformers.optimization", fromlist=["Adafactor"]).Adafactor,
    "lion": lambda: __import__("lion_pytorch", fromlist=["Lion"]).Lion,
    "prodigy": lambda: __import__("prodigyopt", fromlist=["Prodigy"]).Prodigy,
}


def _train(**over):
    return build_config({**MINIMAL, **over}).train


@pytest.mark.parametrize("name", list(LIBRARY_CLASS))
def test_each_optimizer_is_its_librarys_and_minimises(name):
    lr = {"prodigy": 1.0, "lion": 3e-3, "sgd": 1e-2}.get(name, 1e-2)
    cfg = _train(optimizer=name, learning_rate=lr, weight_decay=0.0)
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(64, 128))  # >= 4096 values: bitsandbytes keeps 8-bit states
    opt = make_optimizer([{"params": [weight], "lr": lr}], cfg)
    assert type(opt) is LIBRARY_CLASS[name]()
    start = float((weight.detach() ** 2).mean())
    for _ in range(30):
        opt.zero_grad()
        (weight**2).sum().backward()
        opt.step()
    assert float((weight.detach() ** 2).mean()) < start * 0.9, name
    if name == "adamw8bit":
        state = opt.state[weight]
        assert state["state1"].dtype == torch.uint8  # the moments really are 8-bit


def test_kohya_optimizer_names_are_accepted():
    cfg = build_config({**MINIMAL, "optimizer_type": "AdamW8bit"}).train
    assert cfg.optimizer == "adamw8bit"
    assert _train(optimizer="Prodigy").optimizer == "prodigy"
    with pytest.raises(ConfigError, match="optimizer.*one of"):
        _train(optimizer="adam9")


def test_a_missing_optimizer_library_is_one_sentence(monkeypatch):
    cfg = _train(optimizer="lion")
    monkeypatch.setitem(OPTIMIZER_LIBRARIES, "lion", ("lion_pytorch_not_installed", "Lion", "lion-pytorch"))
    with pytest.raises(ConfigError) as err:  # installed when the config was read, gone when training starts
        make_optimizer([{"params": [torch.nn.Parameter(torch.zeros(2))]}], cfg)
    assert "pip install lion-pytorch" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"lion needs lion-pytorch \(pip install lion-pytorch\)"):
        _train(optimizer="lion")  # and the config itself says so before anything loads


def _curve(total=20, lr=1.0, **over) -> list[float]:
    cfg = _train(learning_rate=lr, **over)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = make_lr_scheduler(opt, cfg, total)
    out = []
    for _ in range(total):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


def _after_warmup(step, warmup, total):
    return (step - warmup) / (total - warmup)


@pytest.mark.parametrize(
    ("over", "formula"),
    [
        ({"lr_scheduler": "constant_with_warmup", "lr_warmup_steps": 4}, lambda s, w, n: min(1.0, s / w)),
        (
            {"lr_scheduler": "cosine", "lr_warmup_steps": 4},
            lambda s, w, n: s / w if s < w else 0.5 * (1 + math.cos(math.pi * _after_warmup(s, w, n))),
        ),
        (
            {"lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 2, "lr_scheduler_num_cycles": 3},
            lambda s, w, n: (
                s / w if s < w else 0.5 * (1 + math.cos(math.pi * ((3 * _after_warmup(s, w, n)) % 1.0)))
            ),
        ),
        (
            {"lr_scheduler": "polynomial", "lr_warmup_steps": 2, "lr_scheduler_power": 2.0},
            lambda s, w, n: s / w if s < w else (1.0 - 1e-7) * (1 - _after_warmup(s, w, n)) ** 2 + 1e-7,
        ),
        ({"lr_scheduler": "linear", "lr_warmup_steps": 0}, lambda s, w, n: 1 - s / n),
    ],
)
def test_lr_schedule_follows_its_formula(over, formula):
    total, warmup = 20, over["lr_warmup_steps"]
    got = _curve(total, **over)
    want = [formula(s, warmup, total) for s in range(total)]
    assert got == pytest.approx(want, abs=1e-6)


def test_num_cycles_and_power_change_the_curve():
    one = _curve(lr_scheduler="cosine_with_restarts")
    three = _curve(lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=3)
    assert sum(b > a + 1e-9 for a, b in zip(three, three[1:], strict=False)) == 2  # two restarts
    assert all(b <= a + 1e-9 for a, b in zip(one, one[1:], strict=False))  # one cycle: no restart
    linear = _curve(lr_scheduler="polynomial")
    squared = _curve(lr_scheduler="polynomial", lr_scheduler_power=2.0)
    assert squared[10] < linear[10]


@pytest.mark.parametrize("name", ["adamw8bit", "adafactor", "lion", "prodigy"])
def test_training_runs_with_each_library_optimizer(base_config, name):
    lr = {"prodigy": 1.0, "lion": 1e-4}.get(name, 1e-3)
    cfg = build_config({**base_config, "optimizer": name, "learning_rate": lr, "max_train_steps": 2})
    result = run_training(cfg)
    assert result.steps == 2 and all(map(math.isfinite, result.losses))
    ups = {k: v for k, v in load_file(result.lora_path).items() if k.endswith("lora_up.weight")}
    assert any(v.abs().sum() > 0 for v in ups.values())  # B left its zero init: the optimiser stepped
    assert all(torch.isfinite(v).all() for v in ups.values())


def test_optimizer_args_reach_the_optimizer_as_kohya_writes_them():
    p = torch.nn.Parameter(torch.zeros(4))
    cfg = _train(optimizer="AdamW", optimizer_args=["betas=0.8,0.99", "eps=1e-6", "amsgrad=True"])
    opt = make_optimizer([{"params": [p]}], cfg)
    assert opt.defaults["betas"] == (0.8, 0.99) and opt.defaults["eps"] == 1e-6 and opt.defaults["amsgrad"]
    mapping = _train(optimizer="prodigy", learning_rate=1.0, optimizer_args={"d_coef": 2, "decouple": False})
    opt = make_optimizer([{"params": [p]}], mapping)
    assert opt.defaults["d_coef"] == 2 and opt.defaults["decouple"] is False
    relative = _train(optimizer="adafactor", optimizer_args=["relative_step=True", "warmup_init=True"])
    opt = make_optimizer([{"params": [p]}], relative)  # Adafactor's own schedule: no fixed rate with it
    assert opt.defaults["relative_step"] and opt.defaults["lr"] is None


def test_bad_optimizer_args_are_one_sentence():
    p = torch.nn.Parameter(torch.zeros(4))
    with pytest.raises(ConfigError, match="optimizer adamw refused its settings.*momentum") as err:
        make_optimizer([{"params": [p]}], _train(optimizer_args=["momentum=0.9"]))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="optimizer_args.*key=value"):
        _train(optimizer_args=["0.9"])
