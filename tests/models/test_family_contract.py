"""The contract every registered model family passes, image (SD1, SD2) and text (the LLM route) alike:
detect, load, LoRA targets, loss, samples, metadata, and a real training run whose file reads back into a
fresh model of the same family."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from lora_scripts.config import NetworkConfig, build_config
from lora_scripts.demo import make_sample_images
from lora_scripts.demo_llm import dialogues, write_dialogues
from lora_scripts.models.detect import locate
from lora_scripts.models.family import Family, TrainableModel
from lora_scripts.models.registry import FAMILIES, TEXT_FAMILIES, detect_family, load_model
from lora_scripts.models.render import RenderRequest
from lora_scripts.models.tiny import save_tiny_model
from lora_scripts.models.tiny_llm import save_tiny_llm
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.save.kohya import read_lora_file
from lora_scripts.save.lora_family import detect_lora_family, lora_widths
from lora_scripts.train.init_lora import apply_init_lora
from lora_scripts.train.run import prepare_data, run_training
from lora_scripts.train.setup import inject_adapters


@dataclass
class Case:
    """One registered family in the suite: its tiny base (by kind), its training data and base config."""

    name: str
    paths: dict[str, Path]
    config: dict

    def cfg(self, tmp_path: Path, **extra):
        return build_config({**self.config, "output_dir": str(tmp_path / "out"), **extra})

    def items(self, cfg, n: int = 2) -> list:
        return prepare_data(cfg)[0].items[:n]  # the route's own reading: image scan or chat tokenising


def _image_case(name: str, tmp: Path) -> Case:
    saver = save_tiny_sdxl if name == "sdxl" else partial(save_tiny_model, family=name)
    paths = saver(tmp / "model")
    data = tmp / "images"
    make_sample_images(data, count=6)
    base = paths.get("single_file", paths["diffusers"])
    config = {"base_model": str(base), "train_data_dir": str(data), "resolution": 64}
    return Case(name, paths, {**config, "doctor": "off", "batch_size": 2})


def _text_case(name: str, tmp: Path) -> Case:
    folder = save_tiny_llm(tmp / "model", arch="llama")
    data = write_dialogues(tmp / "chats.jsonl", dialogues()[:8])  # the LLM demo's own data writer
    return Case(name, {"folder": folder}, {"base_model": str(folder), "dataset": str(data), "batch_size": 2})


@pytest.fixture(scope="module", params=sorted(FAMILIES) + sorted(TEXT_FAMILIES))
def case(request, tmp_path_factory) -> Case:
    """Every registered family, image and text: the protocol is the same, so is this suite."""
    tmp = tmp_path_factory.mktemp(f"family-{request.param}")
    made = _image_case if request.param in FAMILIES else _text_case
    c = made(request.param, tmp)
    c.config.update(output_name="contract", lora_rank=4, max_train_steps=2, learning_rate=1e-3, device="cpu")
    return c


def test_detected_from_every_kind_of_base(case):
    for kind, path in case.paths.items():
        family = detect_family(locate(str(path)))
        assert isinstance(family, Family) and family.info.name == case.name, kind


def test_loads_as_a_trainable_model_with_targets(case, tmp_path):
    cfg = case.cfg(tmp_path)
    model = load_model(cfg.model)
    assert isinstance(model, TrainableModel) and model.info.name == case.name
    modules = model.adapter_modules()
    trained = model.trained_components(cfg.network)
    assert trained[0] in modules
    if case.name in FAMILIES:  # an image family trains its text encoder too when asked
        assert set(model.trained_components(NetworkConfig(train_text_encoder=True))) == set(modules)
    for component, module in modules.items():
        targets = model.lora_targets(component, cfg.network)
        names = dict(module.named_modules())
        assert targets and all(t in names for t in targets), component
        assert set(targets.values()) <= {"linear", "conv1x1", "conv3x3"}


def test_loss_reaches_every_lora_layer(case, tmp_path):
    extra = {"train_text_encoder": True} if case.name in FAMILIES else {}
    cfg = case.cfg(tmp_path, **extra)
    model = load_model(cfg.model)
    trained = model.trained_components(cfg.network)
    inject_adapters(model, cfg.network, trained)
    index = prepare_data(cfg)[0]
    model.prepare_inputs(index, cfg.data_section, cfg.train, trained, tmp_path / "cache")
    loss = model.loss(index.items[:2], cfg.data_section, cfg.train, random.Random(0))
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.dtype == torch.float32
    loss.backward()
    for component, module in model.adapter_modules().items():
        lora_b = [p for n, p in module.named_parameters() if ".lora_B." in n]
        moved = [p.grad is not None and p.grad.abs().sum() > 0 for p in lora_b]
        # at 64 px the mid block sees one token, where softmax gives q/k no gradient: hence not all
        assert lora_b and sum(moved) / len(moved) > 0.9, component


def test_fixed_generator_gives_a_fixed_loss(case, tmp_path):
    """Validation needs the same noise and timesteps every time; the generator alone must decide them
    (a chat loss draws nothing: it must not change at all)."""
    cfg = case.cfg(tmp_path)
    model = load_model(cfg.model)
    items = case.items(cfg)
    rng = random.Random(0)
    with torch.no_grad():
        a = model.loss(items, cfg.data_section, cfg.train, rng, torch.Generator().manual_seed(5))
        torch.manual_seed(123)  # the global RNG must not matter
        b = model.loss(items, cfg.data_section, cfg.train, rng, torch.Generator().manual_seed(5))
        c = model.loss(items, cfg.data_section, cfg.train, rng, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert torch.equal(a, c) if case.name in TEXT_FAMILIES else not torch.equal(a, c)


def test_training_round_trip_and_metadata(case, tmp_path):
    """The trained file (or folder) goes back into a fresh model of the family by the init_lora reader."""
    cfg = case.cfg(tmp_path)
    result = run_training(cfg)
    fresh = load_model(cfg.model)
    net = cfg.network.model_copy(update={"init_lora": str(result.lora_path)})
    parts = apply_init_lora(net, fresh.adapter_modules(), fresh.info.name, fresh.info.adapter_format)
    assert parts[fresh.trained_components(cfg.network)[0]]
    assert any(w.up.abs().sum() > 0 for part in parts.values() for w in part.values())  # trained, not init
    if fresh.info.adapter_format == "kohya":
        tensors, meta = read_lora_file(str(result.lora_path))
        assert detect_lora_family(lora_widths(tensors), meta)[0] == case.name
        assert meta["ss_network_dim"] == "4"
    else:
        conf = json.loads((result.lora_path / "adapter_config.json").read_text(encoding="utf-8"))
        assert conf["r"] == 4 and conf["peft_type"] == "LORA"


def test_render_is_seeded(case, tmp_path):
    model = load_model(case.cfg(tmp_path).model)
    request = RenderRequest("a red phone", seed=3, steps=2, width=64, height=48, sampler="DPM++ 2M")
    other = RenderRequest("a red phone", seed=4, steps=2, width=64, height=48, sampler="DPM++ 2M")
    with torch.no_grad():
        a, b, c = model.render([request, request, other])
    if model.info.sample_kind == "text":  # (base reply, LoRA reply), greedy: the seed changes nothing
        assert isinstance(a, tuple) and all(isinstance(r, str) for r in a) and a == b == c
        return
    assert a.size == (64, 48)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(c))


def test_an_incomplete_sdxl_folder_is_one_sentence(cli, sample_data, tmp_path):
    """An SDXL diffusers folder is taken for SDXL (not SD1, whose text_encoder/ it also has); one without
    weights stops in one sentence when it is loaded, before anything is written."""
    folder = tmp_path / "sdxl-base"
    for sub in ("unet", "text_encoder", "text_encoder_2"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "config.json").write_text(json.dumps({"hidden_size": 1280}))
    assert detect_family(locate(str(folder))).info.name == "sdxl"
    out = tmp_path / "out"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"base_model: {folder}\ntrain_data_dir: {sample_data}\noutput_dir: {out}\ndevice: cpu\n"
        'resolution: 64\ndoctor: "off"\n',
        encoding="utf-8",
    )
    proc = cli("train", "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    assert "Could not load the SDXL diffusers folder" in " ".join(proc.stderr.split())
    assert "Unexpected" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
