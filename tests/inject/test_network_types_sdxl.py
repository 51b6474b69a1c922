"""LoHa and LoKr trained on the tiny SDXL (UNet and both text encoders): the file is in kohya's SDXL layout
(SGM UNet names, lora_te1_/lora_te2_, OpenCLIP-G's attention sets whole) with LyCORIS tensors; the weight
change it implies under A1111's rule equals what the trained peft layer applies, for a linear and a 3x3 conv
UNet layer and a te2 attention projection; `generate` draws with it, `lora inspect` and init_lora read it.

The client rule is the a1111_delta fixture (tests/inject/conftest.py), written from A1111's
extensions-builtin/Lora independently of lora_scripts, as test_network_types.py uses it.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.demo import make_sample_images
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training

pytestmark = pytest.mark.slow

LAYERS = {  # (component, diffusers module path) -> its name in a kohya SDXL file
    ("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"): (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    ),
    ("unet", "down_blocks.0.resnets.0.conv1"): "lora_unet_input_blocks_1_0_in_layers_2",  # 3x3 conv
    ("te2", "text_model.encoder.layers.0.self_attn.q_proj"): (
        "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
    ),
}
PREFIX = {"loha": "hada_", "lokr": "lokr_"}
KIND = {"loha": "LoHa", "lokr": "LoKr"}
NETWORK = {"lora_rank": 4, "lora_alpha": 2, "conv_rank": 2, "conv_alpha": 1, "train_text_encoder": True}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(tiny SDXL paths, training images)."""
    root = tmp_path_factory.mktemp("xl_lyco")
    make_sample_images(root / "images", count=6)
    return save_tiny_sdxl(root / "model"), root / "images"


def _config(world, out, **extra) -> dict:
    base, images = world
    return {
        "base_model": str(base["diffusers"]),
        "train_data_dir": str(images),
        "output_dir": str(out),
        "resolution": 64,
        "batch_size": 2,
        "max_train_steps": 2,
        "learning_rate": 5e-2,
        "save_precision": "float",
        "device": "cpu",
        "doctor": "off",
        **NETWORK,
        **extra,
    }


@pytest.fixture(scope="module", params=["loha", "lokr"])
def trained(request, world, tmp_path_factory):
    """(network type, the file, {"unet": trained UNet, "te2": trained OpenCLIP-G}) with its peft layers."""
    kept, real = {}, run_module.Trainer

    class Keeping(real):
        def train(self):
            result = super().train()
            kept.update(unet=self.model.unet, te2=self.model.text_encoder_2)
            return result

    out = tmp_path_factory.mktemp(f"xl_{request.param}")
    run_module.Trainer = Keeping
    try:
        result = run_training(build_config(_config(world, out, network_type=request.param)))
    finally:
        run_module.Trainer = real
    return request.param, result.lora_path, kept


def test_the_file_is_in_kohya_sdxl_layout_with_lycoris_tensors(trained, cli):
    network, path, _ = trained
    tensors = load_file(str(path))
    parts: dict[str, set[str]] = {}
    for key in tensors:
        name, part = key.split(".", 1)
        parts.setdefault(name, set()).add(part)
    assert all(p == "alpha" or p.startswith(PREFIX[network]) for found in parts.values() for p in found)
    unet = {n for n in parts if n.startswith("lora_unet_")}
    assert all(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_\d", n) for n in unet)
    assert set(LAYERS.values()) <= parts.keys()
    assert {n.split("_")[1] for n in parts} == {"unet", "te1", "te2"}
    for prefix in ("lora_te1_", "lora_te2_"):
        layers = {re.search(r"layers_(\d+)_", n).group(1) for n in parts if n.startswith(prefix)}
        for i in layers:  # A1111 applies an OpenCLIP encoder's q/k/v only as a whole set (in_proj)
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                assert f"{prefix}text_model_encoder_layers_{i}_self_attn_{proj}" in parts, (prefix, i)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert (
        meta["ss_network_module"] == "lycoris.kohya"
        and json.loads(meta["ss_network_args"])["algo"] == network
    )
    report = json.loads(cli("lora", "inspect", str(path), "--json").stdout)
    assert report["family"] == "sdxl" and report["network_types"] == {KIND[network]: report["modules"]}


def test_the_file_implies_the_delta_the_peft_layer_applies(trained, a1111_delta):
    _, path, kept = trained
    tensors = load_file(str(path))
    for (component, module), name in LAYERS.items():
        mine = {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".")}
        layer = kept[component].get_submodule(module)
        with torch.no_grad():
            applied = layer.get_delta_weight("default").double()
        implied = a1111_delta(mine, tuple(layer.get_base_layer().weight.shape))
        assert applied.abs().max() > 1e-6, module  # trained: not the zero delta of a fresh layer
        assert (implied - applied).abs().max() < 1e-6 * max(1.0, applied.abs().max()), module


def test_generate_draws_with_it_and_init_lora_continues_it(trained, world, tmp_path, cli):
    network, path, _ = trained
    single = world[0]["single_file"]
    out = tmp_path / "generated"
    args = ["generate", "neon phone", "-m", str(single), "-l", str(path.parent), "--lora", path.stem]
    args += ["--weights", "0,1", "--seeds", "3", "--steps", "2", "-W", "64", "-H", "64", "-o", str(out)]
    done = cli(*args, "--no-grid")
    assert done.returncode == 0, done.stderr[-2000:]
    base, styled = [np.asarray(Image.open(p)) for p in sorted(out.glob("0*.png"))]
    assert not np.array_equal(base, styled)
    config = _config(
        world, tmp_path / "again", network_type=network, init_lora=str(path), learning_rate=1e-12
    )
    del config["lora_rank"]  # read from the file
    again = run_training(build_config(config))
    a, b = load_file(str(path)), load_file(str(again.lora_path))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
