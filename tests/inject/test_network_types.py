"""LoHa and LoKr (network_type) trained through peft's layers, saved in LyCORIS's kohya key layout: the
weight change each file implies under the clients' own rule equals what the trained peft layer applies, for
linear and 3x3 conv layers; generate, init_lora and `lora inspect` read the files back.

The client rule is the a1111_delta fixture (tests/inject/conftest.py), written from A1111's
extensions-builtin/Lora independently of lora_scripts.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lora_scripts.save.kohya_keys import kohya_name

LINEAR = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
CONV = "down_blocks.0.resnets.0.conv1"


@pytest.mark.parametrize(
    "network, rank, conv_rank",
    [("loha", 4, 2), ("lokr", 4, 2), ("lokr", 64, 64)],  # lokr rank 64: full factors, no low-rank pair
)
def test_the_file_implies_the_delta_the_peft_layer_applies(
    base_config, tmp_path, train_kept, a1111_delta, network, rank, conv_rank
):
    result, unet = train_kept(
        base_config, tmp_path, network_type=network, lora_rank=rank, conv_rank=conv_rank
    )
    tensors = load_file(result.lora_path)
    prefix = {"loha": "hada_", "lokr": "lokr_"}[network]
    assert not any(".lora_down." in k for k in tensors) and any(f".{prefix}" in k for k in tensors)
    for path in (LINEAR, CONV):
        name = kohya_name("unet", path)
        mine = {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".")}
        layer = unet.get_submodule(path)
        with torch.no_grad():
            applied = layer.get_delta_weight("default").double()
        implied = a1111_delta(mine, tuple(layer.get_base_layer().weight.shape))
        assert applied.abs().max() > 1e-6, path  # trained: not the zero delta of a fresh layer
        assert (implied - applied).abs().max() < 1e-6 * max(1.0, applied.abs().max()), path


@pytest.mark.parametrize("network", ["loha", "lokr"])
def test_metadata_names_the_lycoris_algo(base_config, tmp_path, train_kept, network):
    result, _ = train_kept(base_config, tmp_path, network_type=network, conv_rank=2)
    from safetensors import safe_open

    with safe_open(str(result.lora_path), framework="pt") as f:
        meta = f.metadata()
    assert meta["ss_network_module"] == "lycoris.kohya"
    # the ranks of the trained factors, linear layers and 3x3 convs apart; the tiny model's many LoKr layers
    # of full factors (no rank of their own) do not outvote lora_rank
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2")
    assert json.loads(meta["ss_network_args"]) == {"algo": network, "conv_dim": "2", "conv_alpha": "1"}


@pytest.mark.parametrize("network, name", [("loha", "LoHa"), ("lokr", "LoKr")])
def test_generate_inspect_and_init_lora_read_a_lycoris_file(
    base_config, tmp_path, cli, train_kept, draws_and_continues, network, name
):
    result, _ = train_kept(base_config, tmp_path, network_type=network, conv_rank=2)
    report = json.loads(cli("lora", "inspect", str(result.lora_path), "--json").stdout)
    assert report["network_types"] == {name: report["modules"]} and report["family"] == "sd1"
    ranks = " ".join(group["ranks"] for group in report["groups"])
    # the tiny model's LoKr layers of full factors are called that, not given the layer's width as a rank
    assert ("full (x" in ranks) == (network == "lokr") and "64" not in ranks
    draws_and_continues(base_config, tmp_path, result.lora_path, network_type=network, conv_rank=2)


def test_tools_that_need_plain_lora_refuse_a_lokr_file(base_config, tmp_path, cli, train_kept):
    result, _ = train_kept(base_config, tmp_path, network_type="lokr")
    done = cli(
        "lora", "resize", str(result.lora_path), "--rank", "2", "-o", str(tmp_path / "small.safetensors")
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is a LoKr file; this tool works on plain LoRA/LoCon files" in " ".join(done.stderr.split())


@pytest.mark.parametrize("network", ["loha", "lokr"])
def test_generate_applies_the_client_delta(
    base_config, tmp_path, tiny_model, train_kept, a1111_delta, network
):
    """generate's LoRA stack adds exactly weight * (the A1111 delta) to a linear and a 3x3 conv layer."""
    import torch.nn.functional as F

    from lora_scripts.config import ModelConfig
    from lora_scripts.generate.library import LoraLibrary
    from lora_scripts.generate.prompts import LoraRef
    from lora_scripts.generate.stack import LoraStack
    from lora_scripts.models.loader import load_components
    from lora_scripts.models.sd import StableDiffusion

    result, _ = train_kept(base_config, tmp_path, network_type=network, conv_rank=2)
    tensors = load_file(result.lora_path)
    pipe = StableDiffusion(load_components(ModelConfig(base_model=str(tiny_model["single_file"])))).pipeline()
    modules = {"unet": pipe.unet, "te": pipe.text_encoder}
    stack = LoraStack(modules, "sd1", LoraLibrary(result.lora_path.parent))
    for path, shape in ((LINEAR, (2, 77, 64)), (CONV, (1, 32, 8, 8))):
        module = pipe.unet.get_submodule(path)
        name = kohya_name("unet", path)
        mine = {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".")}
        delta = a1111_delta(mine, tuple(module.weight.shape)).float()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            stack.activate([])
            base = module(x)
            stack.activate([LoraRef(result.lora_path.stem, 0.7)])
            got = module(x) - base
        if isinstance(module, torch.nn.Conv2d):
            want = F.conv2d(x, delta, stride=module.stride, padding=module.padding)
        else:
            want = F.linear(x, delta)
        assert want.abs().max() > 1e-5
        torch.testing.assert_close(got, 0.7 * want, atol=1e-5, rtol=1e-4)
    stack.close()
