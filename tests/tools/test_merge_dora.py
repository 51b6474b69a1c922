"""`lora merge` bakes DoRA files into the base: each DoRA module's change W' - W is computed against the
ORIGINAL base weight and scaled by the file's weight, so the files' order does not matter and the merged
model is what generate's LoraStack applies. Per-output-row DoRA files (LyCORIS wd_on_output=True) are
applied with LyCORIS's formula for that axis by generate and merge; inspect reads them and says that
A1111 and ComfyUI compute another weight (their formulas are checked here to differ); init_lora refuses them.

The formulas are written here from the clients' code, independently of lora_scripts:
- per input column, A1111 extensions-builtin/Lora/network.py apply_weight_decompose: merged = W + s*up@down,
  norm per input column (over every axis but 1), W' = merged * dora_scale / norm; weight w: W + w * (W' - W).
- per output row, LyCORIS lycoris/modules/locon.py apply_weight_decompose (wd_on_out): the norm of
  merged.reshape(out, -1) per row, plus torch.finfo(float32).eps; W' = merged * dora_scale / norm. LyCORIS's
  own multiplier m gives merged * (m * (dora_scale / norm - 1) + 1), the same only at m = 1; at other weights
  lora-scripts applies the clients' W + w * (W' - W) for both axes.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lora_scripts.config import ModelConfig
from lora_scripts.generate.library import LoraLibrary
from lora_scripts.generate.prompts import LoraRef
from lora_scripts.generate.stack import LoraStack
from lora_scripts.models.loader import load_components
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.tools.merge import run_merge

UNET, TE = "model.diffusion_model.", "cond_stage_model.transformer.text_model."
# (component, module path, its weight in SD1's LDM single file): a linear, a 3x3 conv, a 1x1 conv, CLIP
MODULES = [
    (
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k",
        UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
    ),
    ("unet", "down_blocks.0.resnets.0.conv1", UNET + "input_blocks.1.0.in_layers.2.weight"),
    ("unet", "down_blocks.0.attentions.0.proj_in", UNET + "input_blocks.1.1.proj_in.weight"),
    ("te", "encoder.layers.0.self_attn.q_proj", TE + "encoder.layers.0.self_attn.q_proj.weight"),
]


def _low_rank(t: dict[str, torch.Tensor], shape) -> torch.Tensor:
    up, down = t["lora_up.weight"].double(), t["lora_down.weight"].double()
    return (up.flatten(1) @ down.flatten(1)).reshape(shape) * (float(t["alpha"]) / down.shape[0])


def a1111_column(t: dict[str, torch.Tensor], orig: torch.Tensor) -> torch.Tensor:
    """W' - W of a per-column file (A1111's apply_weight_decompose)."""
    orig = orig.double()
    merged = orig + _low_rank(t, orig.shape)
    norm = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1)
    norm = norm.reshape(1, merged.shape[1], *[1] * (orig.dim() - 2))
    return merged * (t["dora_scale"].double().reshape(norm.shape) / norm) - orig


def lycoris_row(t: dict[str, torch.Tensor], orig: torch.Tensor) -> torch.Tensor:
    """W' - W of a per-row file (LyCORIS's wd_on_out branch, eps included)."""
    orig = orig.double()
    merged = orig + _low_rank(t, orig.shape)
    norm = merged.reshape(merged.shape[0], -1).norm(dim=1).reshape(-1, *[1] * (orig.dim() - 1))
    norm = norm + torch.finfo(torch.float32).eps
    return merged * (t["dora_scale"].double().reshape(norm.shape) / norm) - orig


def _module(tensors: dict, component: str, path: str) -> dict[str, torch.Tensor]:
    name = kohya_name(component, path)
    return {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".")}


def _with_dora(tensors: dict, base: dict, rows: bool, seed: int) -> dict:
    """The LoRA's modules of MODULES made DoRA: a magnitude near the base weight's norm on that axis."""
    gen = torch.Generator().manual_seed(seed)
    out = dict(tensors)
    for component, path, key in MODULES:
        weight = base[key].float()
        dims = tuple(range(1, weight.dim())) if rows else (0, *range(2, weight.dim()))
        norm = torch.linalg.vector_norm(weight, dim=dims, keepdim=True)
        noise = 1 + 0.3 * torch.randn(norm.shape, generator=gen)
        out[f"{kohya_name(component, path)}.dora_scale"] = norm * noise
    return out


@pytest.fixture()
def files(tiny_model, loras, tmp_path):
    """A column-DoRA file and a row-DoRA file on MODULES, and a plain LoRA on every target."""
    base = load_file(tiny_model["single_file"])
    paths = {}
    for name, seed in (("dora", 11), ("rows", 12), ("plain", 13)):
        parts = loras.parts(rank=4, alpha=2, seed=seed) if name == "plain" else {"unet": {}, "te": {}}
        for component, path, _ in MODULES:  # every file changes MODULES
            shape = loras.targets[component][path][1]
            parts[component][path] = loras.random_lora(shape, 4, torch.Generator().manual_seed(seed), alpha=2)
        tensors = load_file(loras.save(parts, tmp_path / f"{name}.safetensors"))
        if name != "plain":
            tensors = _with_dora(tensors, base, rows=name == "rows", seed=seed)
        save_file(tensors, str(tmp_path / f"{name}.safetensors"), metadata=loras.meta)
        paths[name] = tmp_path / f"{name}.safetensors"
    return base, paths


@torch.no_grad()
def _run(parts) -> tuple[torch.Tensor, torch.Tensor]:
    """The text encoder's and the UNet's outputs for one prompt and one noisy latent."""
    ids = parts.tokenizer("neon phone", padding="max_length", max_length=77, return_tensors="pt").input_ids
    cond = parts.text_encoder(ids)[0]
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    return cond, parts.unet(noise, 500, encoder_hidden_states=cond).sample


def _stacked(tiny_model, folder, refs):
    parts = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    stack = LoraStack({"unet": parts.unet, "te": parts.text_encoder}, "sd1", LoraLibrary(folder))
    stack.activate(refs)
    try:
        return _run(parts)
    finally:
        stack.close()


@pytest.mark.parametrize("kind", ["dora", "rows"])
def test_merge_of_dora_and_lora_is_order_free_and_what_generate_applies(kind, tiny_model, files, tmp_path):
    base, paths = files
    weights = {kind: 0.8, "plain": 0.6}
    merged = {}
    for order in ((kind, "plain"), ("plain", kind)):
        out = tmp_path / f"merged-{'-'.join(order)}.safetensors"
        run_merge(str(tiny_model["single_file"]), [f"{paths[n]}:{weights[n]}" for n in order], out)
        merged[order] = load_file(out)
    first, second = merged.values()
    assert all(torch.equal(first[k], second[k]) for k in first)  # the order of the files does not matter
    dora, plain = load_file(paths[kind]), load_file(paths["plain"])
    formula = lycoris_row if kind == "rows" else a1111_column
    for component, path, key in MODULES:  # W + 0.8 * (W' - W) + 0.6 * plain, both against the base W
        change = formula(_module(dora, component, path), base[key])
        plain_change = _low_rank(_module(plain, component, path), base[key].shape)
        want = base[key].double() + 0.8 * change + 0.6 * plain_change
        assert change.abs().max() > 1e-3, key
        torch.testing.assert_close(first[key].double(), want, atol=2e-5, rtol=1e-5)

    got = _run(load_components(ModelConfig(base_model=str(tmp_path / f"merged-{kind}-plain.safetensors"))))
    refs = [LoraRef("plain", 0.6), LoraRef(kind, 0.8)]
    want = _stacked(tiny_model, paths[kind].parent, refs)
    alone = _stacked(tiny_model, paths[kind].parent, [LoraRef("plain", 0.6)])
    assert not torch.allclose(alone[1], want[1], atol=1e-3)  # the DoRA matters to the UNet output...
    torch.testing.assert_close(got[0], want[0], atol=1e-4, rtol=1e-4)  # ...and the merge bakes it in
    torch.testing.assert_close(got[1], want[1], atol=1e-4, rtol=1e-4)


def test_a_per_row_file_is_lycoris_in_generate_and_inspect_says_clients_differ(tiny_model, files, cli):
    base, paths = files
    tensors = load_file(paths["rows"])
    parts = load_components(ModelConfig(base_model=str(tiny_model["single_file"])))
    models = {"unet": parts.unet, "te": parts.text_encoder}
    stack = LoraStack(models, "sd1", LoraLibrary(paths["rows"].parent))
    gen = torch.Generator().manual_seed(0)
    for component, path, key in MODULES:  # generate adds exactly weight * (LyCORIS's W' - W)
        module = models[component].get_submodule(path)
        mine = _module(tensors, component, path)
        change = lycoris_row(mine, base[key]).float()
        conv = isinstance(module, torch.nn.Conv2d)
        x = torch.randn((1, module.in_channels, 8, 8) if conv else (2, 5, module.in_features), generator=gen)
        with torch.no_grad():
            stack.activate([])
            plain = module(x)
            stack.activate([LoraRef("rows", 0.5)])
            got = module(x) - plain
            want = module._conv_forward(x, 0.5 * change, None) if conv else x @ (0.5 * change).T
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        # what the clients do with it instead (their code, see inject/dora.py): not LyCORIS's weight
        orig, merged = base[key].double(), base[key].double() + _low_rank(mine, base[key].shape)
        scale = mine["dora_scale"].double()
        column = merged.transpose(0, 1).reshape(merged.shape[1], -1).norm(dim=1)
        a1111 = merged * (scale / column.reshape(1, -1, *[1] * (orig.dim() - 2))) - orig  # broadcast
        comfy = merged * (scale / orig.reshape(orig.shape[0], -1).norm(dim=1).reshape(scale.shape)) - orig
        for theirs in (a1111, comfy):
            assert (theirs - change.double()).abs().max() > 1e-3 * change.abs().max(), key
    stack.close()
    done = cli("lora", "inspect", str(paths["rows"]), "--json")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stderr.split())
    assert "4 DoRA modules with one magnitude per output row (LyCORIS wd_on_output=True)" in text
    assert "A1111 divides by the input-column norm and ComfyUI by the base weight's row norm" in text
    assert "DoRA" in json.loads(done.stdout)["network_types"]


def test_init_lora_of_a_per_row_file_is_refused(files, base_config):
    from lora_scripts.config import build_config
    from lora_scripts.errors import ConfigError
    from lora_scripts.train.init_lora import check_init_lora

    _, paths = files
    net = build_config({**base_config, "network_type": "dora", "init_lora": str(paths["rows"])}).network
    with pytest.raises(ConfigError) as err:  # the pre-flight check, before anything is built or written
        check_init_lora(net)
    assert f"init_lora '{paths['rows']}'" in str(err.value)
    assert "one magnitude per output row (LyCORIS wd_on_output=True)" in str(err.value)
    assert "lora-scripts trains DoRA with one per input column" in str(err.value)
    column = build_config({**base_config, "network_type": "dora", "init_lora": str(paths["dora"])}).network
    check_init_lora(column)  # per column: continued
