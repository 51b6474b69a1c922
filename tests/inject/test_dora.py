"""DoRA (network_type: dora) trained through a peft LoRA variant and saved as kohya/LyCORIS `dora_scale`:
the weight each file implies under the clients' own formulas equals what the trained layer applies, for a
linear and a 3x3 conv layer; generate, init_lora and `lora inspect` read the file back; tools that need a
plain LoRA (resize, merge-loras) refuse it in one sentence that points to `lora merge`.

The client formulas are written here from their code, independently of lora_scripts:
- A1111 extensions-builtin/Lora/network.py: finalize_updown scales up @ down by alpha / dim, then
  apply_weight_decompose: merged = W + updown; norm = merged.transpose(0, 1).reshape(in, -1).norm(dim=1)
  (one per input column); final = merged * dora_scale / norm - W; the multiplier scales `final`.
- ComfyUI comfy/weight_adapter/base.py weight_decompose: the input axis when dora_scale.shape[0] differs from
  the weight's; the same merged / norm with torch.finfo(weight.dtype).eps added to the norm;
  strength s gives W + s * (new - W).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError
from lora_scripts.save.kohya_keys import kohya_name

LINEAR = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
CONV = "down_blocks.0.resnets.0.conv1"


def a1111_updown(t: dict[str, torch.Tensor], orig: torch.Tensor, multiplier: float = 1.0) -> torch.Tensor:
    t = {k: v.double() for k, v in t.items()}
    orig = orig.double()
    up, down = t["lora_up.weight"], t["lora_down.weight"]
    updown = (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)).reshape(orig.shape)
    updown = updown * (float(t["alpha"]) / down.shape[0])
    merged = updown + orig
    norm = (
        merged.transpose(0, 1)
        .reshape(merged.shape[1], -1)
        .norm(dim=1, keepdim=True)
        .reshape(merged.shape[1], *[1] * (orig.dim() - 1))
        .transpose(0, 1)
    )
    return (merged * (t["dora_scale"] / norm) - orig) * multiplier


def comfy_weight(t: dict[str, torch.Tensor], orig: torch.Tensor, strength: float) -> torch.Tensor:
    t = {k: v.float() for k, v in t.items()}
    weight = orig.float().clone()
    up, down = t["lora_up.weight"], t["lora_down.weight"]
    diff = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape) * (float(t["alpha"]) / down.shape[0])
    calc = weight + diff
    assert t["dora_scale"].shape[0] != weight.shape[0]  # the input-axis branch
    norm = calc.transpose(0, 1).reshape(calc.shape[1], -1).norm(dim=1, keepdim=True)
    norm = (
        norm.reshape(calc.shape[1], *[1] * (calc.dim() - 1)).transpose(0, 1) + torch.finfo(weight.dtype).eps
    )
    calc = calc * (t["dora_scale"] / norm)
    return weight + strength * (calc - weight)


def _module(tensors: dict[str, torch.Tensor], path: str, unet_names: str = "diffusers") -> dict:
    name = kohya_name("unet", path, unet_names)
    return {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".")}


def _apply(module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(module, torch.nn.Conv2d):
        return F.conv2d(x, weight, stride=module.stride, padding=module.padding)
    return F.linear(x, weight)


def _input(module) -> torch.Tensor:
    """A random input the layer takes: tokens for a linear layer, a small feature map for a conv."""
    shape = (
        (1, module.in_channels, 8, 8) if isinstance(module, torch.nn.Conv2d) else (2, 7, module.in_features)
    )
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _check_trained_layers(tensors, unet, paths, unet_names="diffusers") -> None:
    """The A1111 and ComfyUI weights the file implies are what the trained peft layers apply."""
    for path in paths:
        mine, layer = _module(tensors, path, unet_names), unet.get_submodule(path)
        base = layer.get_base_layer()
        assert mine["dora_scale"].shape == (1, base.weight.shape[1], *[1] * (base.weight.dim() - 2))
        x = _input(base)
        with torch.no_grad():
            applied = (layer(x) - base(x)).double()  # what the trained model adds, through its forward
        implied = a1111_updown(mine, base.weight.detach())
        assert applied.abs().max() > 1e-5, path  # trained: not the zero change of a fresh layer
        torch.testing.assert_close(applied, _apply(base, x.double(), implied), atol=2e-6, rtol=1e-5)
        # ComfyUI/Forge: the same weight, up to the eps it adds to the norm, at strength 1 and 0.6
        for strength in (1.0, 0.6):
            comfy = comfy_weight(mine, base.weight.detach(), strength).double()
            want = base.weight.detach().double() + a1111_updown(mine, base.weight.detach(), strength)
            torch.testing.assert_close(comfy, want, atol=1e-5, rtol=1e-5)


def test_the_file_implies_the_delta_the_trained_layer_applies(base_config, tmp_path, train_kept):
    result, unet = train_kept(base_config, tmp_path, network_type="dora", conv_rank=2)
    tensors = load_file(result.lora_path)
    assert not any("magnitude" in k for k in tensors)
    _check_trained_layers(tensors, unet, (LINEAR, CONV))


def test_an_sdxl_dora_in_sgm_names_is_exact_and_reads_back(base_config, tmp_path, train_kept):
    from lora_scripts.config import ModelConfig
    from lora_scripts.models.registry import load_model
    from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
    from lora_scripts.save.lora_read import load_lora

    folder = save_tiny_sdxl(tmp_path / "sdxl")["diffusers"]
    config = {**base_config, "base_model": str(folder)}
    result, unet = train_kept(config, tmp_path, network_type="dora", conv_rank=2, train_text_encoder=True)
    tensors = load_file(result.lora_path)
    paths = ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k", "down_blocks.1.resnets.0.conv1")
    _check_trained_layers(tensors, unet, paths, "sgm")
    assert any(k.startswith("lora_te2_") and k.endswith(".dora_scale") for k in tensors)
    parts = load_lora(
        result.lora_path, load_model(ModelConfig(base_model=str(folder))).adapter_modules(), "sdxl"
    )
    assert {c for c, ws in parts.items() if ws} == {"unet", "te1", "te2"}
    assert all(w.dora_scale is not None for ws in parts.values() for w in ws.values())


def test_peft_merge_bakes_the_same_weight_and_unmerge_restores_the_base():
    from lora_scripts.inject.lora import inject, lora_parameters

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Conv2d(3, 4, 3, padding=1))
    inject(model, {"0": 2, "1": 2}, {"0": 1.0, "1": 1.0}, kind="dora")
    with torch.no_grad():
        for p in lora_parameters(model):
            p.add_(torch.randn_like(p) * 0.3)
    for layer in model:
        x, base = _input(layer.get_base_layer()), layer.get_base_layer()
        weight = base.weight.detach().clone()
        with torch.no_grad():
            before = layer(x)
            layer.merge()
            torch.testing.assert_close(base(x), before)  # the base layer alone now holds the DoRA weight
            layer.unmerge()
        torch.testing.assert_close(base.weight, weight)


def test_metadata_is_lycoris_dora_and_diffusers_loads_it_without_the_magnitude(
    base_config, tmp_path, train_kept, tiny_model, caplog
):
    from diffusers import StableDiffusionPipeline

    result, _ = train_kept(base_config, tmp_path, network_type="dora", conv_rank=2)
    # diffusers (<= 0.42) loads the file as a plain LoRA, dropping dora_scale with a warning (not exact there)
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model["diffusers"]), safety_checker=None)
    # diffusers' own level: ERROR for good when its logger was first made inside a CLI call of this worker
    # (setup_logging's DIFFUSERS_VERBOSITY), so the warning is asked for here, whatever ran before
    caplog.set_level(logging.WARNING, logger="diffusers")
    pipe.load_lora_weights(str(result.lora_path))
    assert "filter out the keys associated to 'dora_scale`" in caplog.text
    with safe_open(str(result.lora_path), framework="pt") as f:
        meta, keys = f.metadata(), set(f.keys())
    assert meta["ss_network_module"] == "lycoris.kohya"
    args = json.loads(meta["ss_network_args"])
    assert {k: args[k] for k in ("algo", "dora_wd", "wd_on_output")} == {
        "algo": "locon",
        "dora_wd": "True",
        "wd_on_output": "False",
    }
    downs = {k.removesuffix(".lora_down.weight") for k in keys if k.endswith(".lora_down.weight")}
    assert downs and {k.removesuffix(".dora_scale") for k in keys if k.endswith(".dora_scale")} == downs


def test_kohya_spelling_dora_wd_is_network_type_dora(base_config):
    net = build_config({**base_config, "network_type": "locon", "dora_wd": True}).network
    assert (net.network_type, net.conv_rank) == ("dora", net.lora_rank)
    with pytest.raises(ConfigError) as err:
        build_config({**base_config, "network_type": "loha", "dora_wd": True})
    assert "dora_wd works with network_type lora or locon here, not loha" in str(err.value)


def test_generate_inspect_and_init_lora_read_a_dora_file(
    base_config, tmp_path, cli, tiny_model, train_kept, draws_and_continues
):
    from lora_scripts.config import ModelConfig
    from lora_scripts.generate.library import LoraLibrary
    from lora_scripts.generate.prompts import LoraRef
    from lora_scripts.generate.stack import LoraStack
    from lora_scripts.models.loader import load_components
    from lora_scripts.models.sd import StableDiffusion

    result, _ = train_kept(base_config, tmp_path, network_type="dora", conv_rank=2)
    report = json.loads(cli("lora", "inspect", str(result.lora_path), "--json").stdout)
    assert report["network_types"] == {"DoRA": report["modules"]} and report["family"] == "sd1"
    tensors = load_file(result.lora_path)
    pipe = StableDiffusion(load_components(ModelConfig(base_model=str(tiny_model["single_file"])))).pipeline()
    stack = LoraStack(
        {"unet": pipe.unet, "te": pipe.text_encoder}, "sd1", LoraLibrary(result.lora_path.parent)
    )
    for path in (LINEAR, CONV):  # generate adds exactly weight * (A1111's change)
        module = pipe.unet.get_submodule(path)
        want = a1111_updown(_module(tensors, path), module.weight.detach(), 0.7).float()
        x = _input(module)
        with torch.no_grad():
            stack.activate([])
            base = module(x)
            stack.activate([LoraRef(result.lora_path.stem, 0.7)])
            got = module(x) - base
        assert got.abs().max() > 1e-5
        torch.testing.assert_close(got, _apply(module, x, want), atol=1e-5, rtol=1e-4)
    stack.close()
    draws_and_continues(base_config, tmp_path, result.lora_path, network_type="dora")


def test_tools_refuse_a_dora_file_and_a_damaged_scale(base_config, tmp_path, cli, tiny_model, train_kept):
    from lora_scripts.config import ModelConfig
    from lora_scripts.errors import FormatError
    from lora_scripts.models.loader import load_components
    from lora_scripts.save.lora_read import load_lora

    result, _ = train_kept(base_config, tmp_path, network_type="dora")
    for args in (  # `lora merge` bakes it into the base (tests/tools/test_merge_dora.py)
        ("resize", str(result.lora_path), "--rank", "2", "-o", str(tmp_path / "small.safetensors")),
        (
            "merge-loras",
            str(result.lora_path),
            str(result.lora_path),
            "-o",
            str(tmp_path / "sum.safetensors"),
        ),
    ):
        done = cli("lora", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args
        said = " ".join(done.stderr.split())
        assert "is a DoRA file; this tool works on plain LoRA/LoCon files" in said
        assert "Bake it into the base model with `lora merge BASE FILE:WEIGHT -o merged.safetensors`" in said
    tensors = load_file(result.lora_path)  # neither per input column nor per output row
    name = kohya_name("unet", LINEAR)
    out = tensors[f"{name}.lora_up.weight"].shape[0]
    tensors[f"{name}.dora_scale"] = torch.ones(out + 1, 1)
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged))
    components = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    with pytest.raises(FormatError) as err:
        load_lora(damaged, {"unet": components.unet, "te": components.text_encoder}, "sd1")
    assert f"has a dora_scale of shape [{out + 1}, 1], neither one per input column" in str(err.value)


def test_init_lora_of_another_network_type_is_refused_before_training(base_config, tmp_path, train_kept):
    from lora_scripts.train.init_lora import check_init_lora

    result, _ = train_kept(base_config, tmp_path, network_type="dora")
    net = build_config({**base_config, "init_lora": str(result.lora_path)}).network
    with pytest.raises(ConfigError) as err:
        check_init_lora(net)
    assert "is a DoRA file but network_type is lora" in str(err.value)
    assert "Set network_type: dora to continue it" in str(err.value)
