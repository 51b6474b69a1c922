"""diffusers configs for a single-file checkpoint: SD1/SD2 templates with sizes read from the tensors.

Reading sizes from the weights (not a hub config) keeps loading offline and lets the tiny demo model go
through exactly the code path a real v1-5-pruned.safetensors does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import ModelError
from .detect import UNET_PREFIX

U = UNET_PREFIX
VAE = "first_stage_model."
SCALED_LINEAR = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
# No tensor shape tells GroupNorm's group count; SD's is 32. Small models (assets/demo-base) name theirs here.
NORM_GROUPS_KEY = "lora_scripts.norm_num_groups"


def norm_groups(path: str) -> int:
    """The GroupNorm group count a single file declares in its safetensors header (32 when it says none)."""
    if Path(path).suffix.lower() != ".safetensors":
        return 32
    with safe_open(path, framework="pt") as f:
        value = (f.metadata() or {}).get(NORM_GROUPS_KEY, "32")
    if not value.isdigit() or int(value) < 1:
        raise ModelError(
            f"'{path}' declares {NORM_GROUPS_KEY} = {value!r} in its header, which is not a group count",
            "Rebuild the file, or remove that header entry if the model uses SD's 32 groups",
        )
    return int(value)


def unet_config(family: str, sd: dict[str, torch.Tensor], groups: int = 32) -> dict:
    levels = _count(sd, U + "input_blocks.", lambda s: int(s.split(".")[0])) // 3
    chans = [int(sd[f"{U}input_blocks.{3 * i + 1}.0.out_layers.3.weight"].shape[0]) for i in range(levels)]
    ctx = sd[f"{U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]
    linear = sd[f"{U}input_blocks.1.1.proj_in.weight"].ndim == 2
    heads = 8 if family == "sd1" else [max(1, c // 64) for c in chans]
    return {
        "sample_size": 64 if family == "sd1" else 96,
        "in_channels": int(sd[U + "input_blocks.0.0.weight"].shape[1]),
        "out_channels": int(sd[U + "out.2.weight"].shape[0]),
        "down_block_types": ["CrossAttnDownBlock2D"] * (levels - 1) + ["DownBlock2D"],
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (levels - 1),
        "block_out_channels": chans,
        "layers_per_block": 2,
        "cross_attention_dim": int(ctx.shape[1]),
        "attention_head_dim": heads,
        "use_linear_projection": linear,
        "upcast_attention": family == "sd2",
        "norm_num_groups": groups,
    }


def sdxl_unet_config(sd: dict[str, torch.Tensor], groups: int = 32) -> dict:
    """SDXL's UNet from an SGM single file: levels, widths, transformer depth per level, context width and
    the size-conditioning widths all read from the tensors; heads are width // 64 as in SDXL."""
    levels = _count(sd, U + "input_blocks.", lambda s: int(s.split(".")[0])) // 3
    chans = [int(sd[f"{U}input_blocks.{3 * i + 1}.0.out_layers.3.weight"].shape[0]) for i in range(levels)]
    attention = [f"{U}input_blocks.{3 * i + 1}.1.proj_in.weight" in sd for i in range(levels)]
    depth = [
        _count(sd, f"{U}input_blocks.{3 * i + 1}.1.transformer_blocks.", lambda s: int(s.split(".")[0]))
        if attention[i]
        else 1
        for i in range(levels)
    ]
    first = next(i for i in range(levels) if attention[i])
    ctx = sd[f"{U}input_blocks.{3 * first + 1}.1.transformer_blocks.0.attn2.to_k.weight"]
    label = sd[U + "label_emb.0.0.weight"]
    pooled = int(sd["conditioner.embedders.1.model.text_projection"].shape[1])
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention]
    return {
        "sample_size": 128,
        "in_channels": int(sd[U + "input_blocks.0.0.weight"].shape[1]),
        "out_channels": int(sd[U + "out.2.weight"].shape[0]),
        "down_block_types": down,
        "up_block_types": [b.replace("Down", "Up") for b in reversed(down)],
        "block_out_channels": chans,
        "layers_per_block": 2,
        "transformer_layers_per_block": depth,
        "cross_attention_dim": int(ctx.shape[1]),
        "attention_head_dim": [max(1, c // 64) for c in chans],
        "use_linear_projection": True,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": (int(label.shape[1]) - pooled) // 6,
        "projection_class_embeddings_input_dim": int(label.shape[1]),
        "norm_num_groups": groups,
    }


def vae_config(sd: dict[str, torch.Tensor], groups: int = 32) -> dict:
    levels = 1 + max(int(k.split(".")[3]) for k in sd if k.startswith(VAE + "encoder.down."))
    chans = [int(sd[f"{VAE}encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in range(levels)]
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": int(sd[VAE + "quant_conv.weight"].shape[0]) // 2,
        "block_out_channels": chans,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "layers_per_block": _count(sd, VAE + "encoder.down.0.block.", lambda s: int(s.split(".")[0])),
        "norm_num_groups": groups,
        "sample_size": 512,
        "scaling_factor": 0.18215,
    }


def text_config(family: str, sd: dict[str, torch.Tensor], prefix: str | None = None) -> dict:
    """`family` "sd1" reads a CLIP (transformers layout), "sd2" an OpenCLIP; `prefix` where it sits (SDXL
    holds one of each under conditioner.embedders)."""
    if family == "sd1":
        prefix = prefix or "cond_stage_model.transformer."
        emb = next(v for k, v in sd.items() if k.startswith(prefix) and k.endswith("token_embedding.weight"))
        layers = _count(sd, prefix, _layer_index)
        fc1 = next(v for k, v in sd.items() if k.startswith(prefix) and k.endswith("layers.0.mlp.fc1.weight"))
        act, pos = "quick_gelu", 77
    else:
        prefix = prefix or "cond_stage_model.model."
        emb = sd[prefix + "token_embedding.weight"]
        # Real SD2 files hold all 24 OpenCLIP blocks but condition on the penultimate one (diffusers: 23).
        layers = _count(sd, prefix + "transformer.resblocks.", lambda s: int(s.split(".")[0]))
        layers = 23 if layers == 24 else layers
        fc1 = sd[prefix + "transformer.resblocks.0.mlp.c_fc.weight"]
        act, pos = "gelu", int(sd[prefix + "positional_embedding"].shape[0])
    hidden = int(emb.shape[1])
    return {
        "vocab_size": int(emb.shape[0]),
        "hidden_size": hidden,
        "intermediate_size": int(fc1.shape[0]),
        "num_hidden_layers": layers,
        "num_attention_heads": max(1, hidden // 64),
        "max_position_embeddings": pos,
        "hidden_act": act,
        "projection_dim": hidden,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407 if family == "sd1" else 0,
    }


def _layer_index(rest: str) -> int:
    marker = "encoder.layers."
    return int(rest.split(marker, 1)[1].split(".")[0]) if marker in rest else -1


def _count(sd: dict, prefix: str, index_of) -> int:
    found = [index_of(k[len(prefix) :]) for k in sd if k.startswith(prefix)]
    if not found:
        raise KeyError(prefix)  # the loaders say "missing the weight <prefix>...": an incomplete file
    return 1 + max(found)
