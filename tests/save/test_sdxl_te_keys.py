"""kohya's names of SDXL's two text encoders (`lora_te1_` CLIP-L, `lora_te2_` OpenCLIP-G) at real size,
checked against the clients' own key rules. The rules are written here from the clients' code, independently
of lora_scripts:

- ComfyUI, comfyanonymous/ComfyUI comfy/lora.py `model_lora_keys_clip` (read at 41444b5): with clip_l and
  clip_g both present (SDXL) it accepts exactly `lora_te1_text_model_encoder_layers_{b}_{m}` for each of
  clip_l's layers and `lora_te2_text_model_encoder_layers_{b}_{m}` for each of clip_g's, m from its
  LORA_CLIP_MAP (mlp_fc1, mlp_fc2, self_attn_k/q/v/out_proj), each onto
  `clip_{l,g}.transformer.text_model.encoder.layers.{b}.{c}.weight`; `load_lora` reads
  `<name>.lora_up.weight`, `.lora_down.weight`, `.alpha` and warns of every other key.
- A1111, AUTOMATIC1111/stable-diffusion-webui extensions-builtin/Lora/networks.py (read at 873edba; the same
  rule in 1.10): `load_network` splits a key at its first dot; `convert_diffusers_name_to_compvis` turns
  `lora_te2_text_model_encoder_layers_N_<rest>` into `1_model_transformer_resblocks_N_<rest>` with mlp_fc1 ->
  mlp_c_fc, else mlp_fc2 -> mlp_c_proj, else self_attn -> attn (OpenCLIP-G inside the SGM conditioner's
  embedder 1); a name not found that ends in _q/_k/_v_proj falls back to its attention module (re_x_proj), an
  nn.MultiheadAttention, which `network_apply_weights` changes only when q, k, v AND out_proj are all loaded
  (it folds q/k/v into in_proj_weight; out_proj's own forward never runs). A `lora_te1_text_model...` name
  that matches nothing becomes `0_transformer_text_model...` (CLIP-L, transformers naming, in embedder 0).

The encoders are built on the meta device (real sizes, no memory), get their LoRA layers as the trainer
injects them, and go through the writer's to_kohya.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest
import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from lora_scripts.config import NetworkConfig
from lora_scripts.inject.lora import LoraWeights, inject_network, read_weights
from lora_scripts.models.registry import family_info
from lora_scripts.models.sdxl import SDXLParts, StableDiffusionXL
from lora_scripts.save.kohya import to_kohya

# stabilityai/stable-diffusion-xl-base-1.0 text_encoder/ and text_encoder_2/ config.json
CLIP_L = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
CLIP_G = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=20, intermediate_size=5120)
CLIP_L_LAYERS, CLIP_G_LAYERS = CLIP_L["num_hidden_layers"], CLIP_G["num_hidden_layers"]

# ComfyUI's LORA_CLIP_MAP: the encoder modules it maps, and their names in a LoRA file
COMFY_CLIP_MODULES = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}
LORA_PARTS = (".lora_up.weight", ".lora_down.weight", ".alpha")
FOLD = ("_q_proj", "_k_proj", "_v_proj", "_out_proj")  # what A1111 needs to change a MultiheadAttention


def weight_shape(cfg: dict, module: str) -> tuple[int, int]:
    """(out, in) of a CLIP layer's weight: what the LoRA's up @ down must match."""
    width, inner = cfg["hidden_size"], cfg["intermediate_size"]
    return {"mlp.fc1": (inner, width), "mlp.fc2": (width, inner)}.get(module, (width, width))


def comfy_sdxl_clip_keys() -> dict[str, tuple[str, tuple[int, int]]]:
    """ComfyUI's key_map for SDXL's clip_l + clip_g (the kohya part of it): name -> (target weight, shape).
    Its loop runs b over range(32) and keeps the layers the model has."""
    keys = {}
    for b in range(32):
        for module, lora in COMFY_CLIP_MODULES.items():
            for clip, prefix, cfg in (("clip_l", "lora_te1_", CLIP_L), ("clip_g", "lora_te2_", CLIP_G)):
                if b < cfg["num_hidden_layers"]:
                    target = f"{clip}.transformer.text_model.encoder.layers.{b}.{module}.weight"
                    keys[f"{prefix}text_model_encoder_layers_{b}_{lora}"] = (
                        target,
                        weight_shape(cfg, module),
                    )
    return keys


class _OpenClipBlock(nn.Module):
    """open_clip's ResidualAttentionBlock, by its module names (attn is torch's MultiheadAttention)."""

    def __init__(self, width: int, heads: int, inner: int):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.mlp = nn.Sequential(
            OrderedDict(c_fc=nn.Linear(width, inner), gelu=nn.GELU(), c_proj=nn.Linear(inner, width))
        )


def a1111_sdxl_te_modules() -> dict[str, nn.Module]:
    """A1111's network_layer_mapping for SDXL's encoders: `{i}_<module path with _>` per conditioner
    embedder."""
    table: dict[str, nn.Module] = {}
    for b in range(CLIP_L_LAYERS):  # embedder 0: FrozenCLIPEmbedder.transformer (transformers CLIPTextModel)
        for module in COMFY_CLIP_MODULES:
            name = f"0_transformer_text_model_encoder_layers_{b}_{module.replace('.', '_')}"
            table[name] = nn.Linear(1, 1, device="meta")
    open_clip = (
        nn.Module()
    )  # embedder 1: FrozenOpenCLIPEmbedder2.model (open_clip), model.transformer.resblocks
    open_clip.model = nn.Module()
    open_clip.model.transformer = nn.Module()
    with torch.device("meta"):
        open_clip.model.transformer.resblocks = nn.ModuleList(
            _OpenClipBlock(CLIP_G["hidden_size"], CLIP_G["num_attention_heads"], CLIP_G["intermediate_size"])
            for _ in range(CLIP_G_LAYERS)
        )
    table.update({f"1_{n.replace('.', '_')}": m for n, m in open_clip.named_modules() if n})
    return table


def a1111_key(name: str, table: dict[str, nn.Module]) -> str | None:
    """The key load_network files a kohya module name under (None: 'failed to match')."""
    key = name
    if m := re.match(r"lora_te2_text_model_encoder_layers_(\d+)_(.+)", name):
        layer, rest = m.groups()
        if "mlp_fc1" in rest:
            rest = rest.replace("mlp_fc1", "mlp_c_fc")
        elif "mlp_fc2" in rest:
            rest = rest.replace("mlp_fc2", "mlp_c_proj")
        else:
            rest = rest.replace("self_attn", "attn")
        key = f"1_model_transformer_resblocks_{layer}_{rest}"
    if key in table:
        return key
    if (m := re.match(r"(.*)_([qkv]_proj)$", key)) and m.group(1) in table:
        return key
    if "lora_te1_text_model" in name:
        for prefix in ("0_transformer_text_model", "transformer_text_model"):
            if (key := name.replace("lora_te1_text_model", prefix)) in table:
                return key
    return None


def a1111_applied(keys: set[str], table: dict[str, nn.Module]) -> set[str]:
    """The loaded keys whose LoRA network_apply_weights adds to a weight: a Linear's own key (not an
    attention's out_proj, whose forward never runs), or a MultiheadAttention's q/k/v/out_proj keys when all
    four are there."""
    applied = set()
    for name, module in table.items():
        if isinstance(module, nn.MultiheadAttention):
            fold = {name + part for part in FOLD}
            applied |= fold if fold <= keys else set()
        elif isinstance(module, nn.Linear) and name in keys:
            parent = table.get(name.removesuffix("_out_proj"))
            applied |= set() if isinstance(parent, nn.MultiheadAttention) else {name}
    return applied


@pytest.fixture(scope="module")
def written() -> dict[str, torch.Tensor]:
    """The kohya state dict the trainer's SDXL encoders would be saved as (rank 1, real shapes)."""
    with torch.device("meta"):
        te1 = CLIPTextModel(CLIPTextConfig(**CLIP_L, projection_dim=768, hidden_act="quick_gelu"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G, projection_dim=1280, hidden_act="gelu"))
    model = StableDiffusionXL(SDXLParts(None, None, te1, te2, None, None, None, "epsilon", "meta"))
    net = NetworkConfig(train_text_encoder=True, lora_rank=1)
    encoders = [c for c in model.trained_components(net) if c != "unet"]
    assert encoders == ["te1", "te2"]
    parts = {}
    for component in encoders:
        encoder = getattr(model, model.COMPONENTS[component])
        inject_network(encoder, model.lora_targets(component, net), net)
        # the writer copies to the CPU: stand-in tensors of the meta weights' shapes
        parts[component] = {
            path: LoraWeights(torch.zeros(w.down.shape), torch.zeros(w.up.shape), w.alpha)
            for path, w in read_weights(encoder).items()
        }
    return to_kohya(parts, "fp16", family_info("sdxl").unet_names)


def names_of(state: dict[str, torch.Tensor]) -> set[str]:
    return {key.split(".", 1)[0] for key in state}  # A1111 splits at the first dot; LoRA names have none


def test_the_encoders_get_every_module_comfyui_maps(written):
    names = names_of(written)
    comfy = comfy_sdxl_clip_keys()
    te2 = {n for n in comfy if n.startswith("lora_te2_")}
    # CLIP-L: every layer SDXL reads (its penultimate output: layer 11 never acts); OpenCLIP-G: all 32
    te1 = {
        n
        for n in comfy
        if n.startswith("lora_te1_") and not n.startswith("lora_te1_text_model_encoder_layers_11_")
    }
    assert len(te1) == (CLIP_L_LAYERS - 1) * 6 and len(te2) == CLIP_G_LAYERS * 6
    assert names == te1 | te2


def test_comfyui_loads_every_key_onto_a_weight_of_its_shape(written):
    comfy = comfy_sdxl_clip_keys()
    for key in written:
        part = next((p for p in LORA_PARTS if key.endswith(p)), None)
        assert part is not None, f"ComfyUI would warn 'lora key not loaded: {key}'"
        name = key.removesuffix(part)
        assert name in comfy, f"{name} is not in ComfyUI's model_lora_keys_clip for SDXL"
        target, shape = comfy[name]
        up, down = written[name + ".lora_up.weight"], written[name + ".lora_down.weight"]
        assert (up.shape[0], down.shape[1]) == shape, (
            f"{name}: LoRA {up.shape}@{down.shape}, {target} {shape}"
        )


def test_a1111_maps_and_applies_every_name(written):
    table = a1111_sdxl_te_modules()
    names = names_of(written)
    keys = {name: a1111_key(name, table) for name in names}
    unmatched = sorted(n for n, k in keys.items() if k is None)
    assert not unmatched, f"A1111 fails to match {unmatched[:3]}"
    assert len(set(keys.values())) == len(names)  # no two names land on one module
    te2 = {k for n, k in keys.items() if n.startswith("lora_te2_")}
    assert all(k.startswith("1_model_transformer_resblocks_") for k in te2)
    assert all(
        k.startswith("0_transformer_text_model_") for n, k in keys.items() if n.startswith("lora_te1_")
    )
    # OpenCLIP-G: each of its 32 attentions gets its q/k/v (folded into in_proj) and out_proj, all four
    for layer in range(CLIP_G_LAYERS):
        attn = f"1_model_transformer_resblocks_{layer}_attn"
        assert {attn + part for part in FOLD} <= te2, (
            f"A1111 skips layer {layer}'s attention: not all of q/k/v/out"
        )
    missed = set(keys.values()) - a1111_applied(set(keys.values()), table)
    assert not missed, f"A1111 loads but never applies {sorted(missed)[:3]}"


def test_the_a1111_rule_as_written_here():
    """The rule above on the names A1111's own code spells out (and a partial set it leaves unapplied)."""
    table = a1111_sdxl_te_modules()
    assert (
        a1111_key("lora_te2_text_model_encoder_layers_5_mlp_fc1", table)
        == "1_model_transformer_resblocks_5_mlp_c_fc"
    )
    assert a1111_key("lora_te2_text_model_encoder_layers_5_self_attn_out_proj", table) == (
        "1_model_transformer_resblocks_5_attn_out_proj"
    )
    q = a1111_key("lora_te2_text_model_encoder_layers_5_self_attn_q_proj", table)
    assert q == "1_model_transformer_resblocks_5_attn_q_proj" and q not in table  # held by the attention
    assert a1111_key("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", table) == (
        "0_transformer_text_model_encoder_layers_0_self_attn_q_proj"
    )
    assert a1111_key("lora_te_text_model_encoder_layers_0_self_attn_q_proj", table) is None  # SD1 name
    attn = "1_model_transformer_resblocks_5_attn"
    assert a1111_applied({attn + p for p in FOLD[:3]}, table) == set()  # no out_proj: nothing applied
    assert a1111_applied({attn + p for p in FOLD}, table) == {attn + p for p in FOLD}
