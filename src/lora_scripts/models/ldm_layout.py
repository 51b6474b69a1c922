# Hand-written: diffusers only reads the LDM/CompVis single-file layout; no installed library writes it.
"""Convert diffusers-layout Stable Diffusion state dicts to the original LDM single-file layout.

This is the inverse of ``diffusers.loaders.single_file_utils`` (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``), and
writes the key names of e.g. ``v1-5-pruned.safetensors`` / ``v2-1_768-ema-pruned.safetensors``.
Tensors are renamed, not copied, except where the layout changes their shape or packing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch
from torch import Tensor

from lora_scripts.errors import FormatError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
OPEN_CLIP_PREFIX = "cond_stage_model.model."

_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's size/crop conditioning (SGM names)
    "add_embedding.linear_2": "label_emb.0.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_TOP = {
    "conv_in": "conv_in",
    "conv_out": "conv_out",
    "conv_norm_out": "norm_out",
}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPEN_CLIP_LAYER = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}


def _unknown(key: str, part: str) -> FormatError:
    return FormatError(
        f"Cannot write {part} weight {key!r} in the LDM single-file layout",
        "Only Stable Diffusion 1.x/2.x models can be saved as a single .safetensors checkpoint",
    )


def _rename_module(rest: str, table: dict[str, str]) -> str | None:
    """``rest`` is ``<module>.<param>``; rename the module by ``table`` (None if it is not listed)."""
    module, _, param = rest.rpartition(".")
    new = table.get(module)
    return None if new is None else f"{new}.{param}"


def _resnet(rest: str) -> str | None:
    return _rename_module(rest, _UNET_RESNET)


def _count(keys: Iterable[str], pattern: str) -> int:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _unet_key(key: str, per_level: int, up_attn: set[int]) -> str | None:
    """LDM name of one UNet key; ``per_level`` = layers_per_block + 1 LDM blocks per level."""
    if (new := _rename_module(key, _UNET_TOP)) is not None:
        return new
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        side, level, kind, j, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
        index = 1 + level * per_level + j if side == "down" else level * per_level + j
        block = f"{'input' if side == 'down' else 'output'}_blocks.{index}"
        inner = _resnet(rest) if kind == "resnets" else rest
        return None if inner is None else f"{block}.{0 if kind == 'resnets' else 1}.{inner}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
        return f"input_blocks.{1 + int(m.group(1)) * per_level + per_level - 1}.0.op.{m.group(2)}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
        level = int(m.group(1))
        slot = 2 if level in up_attn else 1
        return f"output_blocks.{level * per_level + per_level - 1}.{slot}.conv.{m.group(2)}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", key):
        inner = _resnet(m.group(2))
        return None if inner is None else f"middle_block.{2 * int(m.group(1))}.{inner}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m.group(1)}"
    return None


def unet_module_name(path: str, per_level: int, up_attn: set[int]) -> str | None:
    """The LDM/SGM path of a UNet module (not a parameter), e.g. `down_blocks.1.attentions.0.proj_in` ->
    `input_blocks.4.1.proj_in` for SDXL: what kohya names SDXL LoRA modules after. None if unknown."""
    new = _unet_key(f"{path}.weight", per_level, up_attn)
    return None if new is None else new.removesuffix(".weight")


def unet_to_ldm(unet_sd: dict[str, Tensor], num_levels: int | None = None) -> dict[str, Tensor]:
    """diffusers ``UNet2DConditionModel`` state dict -> ``model.diffusion_model.*`` (SD1.x/SD2.x UNet).

    layers_per_block and the number of levels are read from the keys; ``num_levels``, if given, is checked.
    """
    keys = list(unet_sd)
    levels = _count(keys, r"down_blocks\.(\d+)\.")
    if num_levels is not None and num_levels != levels:
        raise FormatError(f"The UNet has {levels} down levels, expected {num_levels}")
    per_level = _count(keys, r"down_blocks\.0\.resnets\.(\d+)\.") + 1
    up_attn = {int(m.group(1)) for k in keys if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out = {}
    for key, tensor in unet_sd.items():
        new = _unet_key(key, per_level, up_attn)
        if new is None:
            raise _unknown(key, "UNet")
        out[UNET_PREFIX + new] = tensor
    return out


def _vae_block_key(side: str, key: str, num_up: int) -> str | None:
    if m := re.fullmatch(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)", key):
        level = int(m.group(2)) if m.group(1) == "down" else num_up - 1 - int(m.group(2))
        kind, j, rest = m.group(3), m.group(4), m.group(5)
        if kind == "resnets":
            return f"{side}.{m.group(1)}.{level}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        return f"{side}.{m.group(1)}.{level}.{kind[:-2]}.{rest}"  # downsamplers.0.conv -> downsample.conv
    if m := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", key):
        return f"{side}.mid.block_{int(m.group(1)) + 1}.{m.group(2)}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        new = _rename_module(m.group(1), _VAE_ATTN)
        return None if new is None else f"{side}.mid.attn_1.{new}"
    new = _rename_module(key, _VAE_TOP)
    return None if new is None else f"{side}.{new}"


def vae_to_ldm(vae_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """diffusers ``AutoencoderKL`` state dict -> ``first_stage_model.*``.

    The mid-block attention q/k/v/proj_out are 1x1 convolutions in LDM, so their 2-D linear weights
    gain two trailing singleton dimensions.
    """
    num_up = _count(vae_sd, r"decoder\.up_blocks\.(\d+)\.")
    out = {}
    for key, tensor in vae_sd.items():
        side, _, rest = key.partition(".")
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            new = key
        elif side in ("encoder", "decoder"):
            new = _vae_block_key(side, rest, num_up)
        else:
            new = None
        if new is None:
            raise _unknown(key, "VAE")
        if ".mid.attn_1." in new and tensor.ndim == 2:
            tensor = tensor.reshape(*tensor.shape, 1, 1)
        out[VAE_PREFIX + new] = tensor
    return out


def _text_keys(te_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Text-encoder state dict without the ``text_model.`` prefix (transformers < 5) and buffers."""
    return {k.removeprefix("text_model."): v for k, v in te_sd.items() if not k.endswith("position_ids")}


def clip_to_ldm(te_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """SD1 text encoder (transformers ``CLIPTextModel``) -> ``cond_stage_model.transformer.text_model.*``."""
    return {CLIP_PREFIX + k: v for k, v in _text_keys(te_sd).items()}


def _open_clip_key(key: str) -> str | None:
    fixed = {
        "embeddings.token_embedding.weight": "token_embedding.weight",
        "embeddings.position_embedding.weight": "positional_embedding",
        "final_layer_norm.weight": "ln_final.weight",
        "final_layer_norm.bias": "ln_final.bias",
    }
    if key in fixed:
        return fixed[key]
    if m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
        new = _rename_module(m.group(2), _OPEN_CLIP_LAYER)
        return None if new is None else f"transformer.resblocks.{m.group(1)}.{new}"
    return None


def open_clip_to_ldm(te_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """SD2 text encoder (transformers ``CLIPTextModel``, OpenCLIP ViT-H) -> ``cond_stage_model.model.*``.

    q/k/v projections are packed into ``attn.in_proj_weight``/``in_proj_bias`` (q, k, v order).
    diffusers' SD2 text encoder has the 23 layers SD2 uses (it reads the penultimate layer of 24), so the
    file has 23 resblocks; loaders ignore the unused last one. ``text_projection`` (unused by SD2) is
    written as an identity matrix so the file carries every OpenCLIP top-level tensor.
    """
    sd = _text_keys(te_sd)
    out: dict[str, Tensor] = {}
    qkv = re.compile(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")
    for key, tensor in sd.items():
        if m := qkv.fullmatch(key):
            if m.group(2) == "q":
                layer, param = m.group(1), m.group(3)
                parts = [sd[f"encoder.layers.{layer}.self_attn.{p}_proj.{param}"] for p in "qkv"]
                out[f"transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat(parts, 0)
            continue
        new = _open_clip_key(key)
        if new is None:
            raise _unknown(key, "text encoder")
        out[new] = tensor
    width = out["token_embedding.weight"].shape[1]
    out["text_projection"] = torch.eye(width, dtype=out["token_embedding.weight"].dtype)
    return {OPEN_CLIP_PREFIX + k: v for k, v in out.items()}


SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."


def sdxl_to_ldm(
    unet_sd: dict[str, Tensor],
    vae_sd: dict[str, Tensor],
    te1_sd: dict[str, Tensor],
    te2_sd: dict[str, Tensor],
) -> dict[str, Tensor]:
    """SDXL's parts -> the SGM single-file layout of sd_xl_base_1.0.safetensors: CLIP-L under
    conditioner.embedders.0.transformer, OpenCLIP-G under conditioner.embedders.1.model with its
    text_projection stored as OpenCLIP does ([width, projection], the transpose of transformers')."""
    te2 = dict(te2_sd)
    projection = te2.pop("text_projection.weight")
    clip_l = {SDXL_CLIP_PREFIX + k.removeprefix(CLIP_PREFIX): v for k, v in clip_to_ldm(te1_sd).items()}
    clip_g = {
        SDXL_OPEN_CLIP_PREFIX + k.removeprefix(OPEN_CLIP_PREFIX): v for k, v in open_clip_to_ldm(te2).items()
    }
    clip_g[SDXL_OPEN_CLIP_PREFIX + "text_projection"] = projection.T.contiguous()
    return {**unet_to_ldm(unet_sd), **vae_to_ldm(vae_sd), **clip_l, **clip_g}


def pipeline_to_ldm(
    unet_sd: dict[str, Tensor], vae_sd: dict[str, Tensor], te_sd: dict[str, Tensor], family: str
) -> dict[str, Tensor]:
    """UNet + VAE + text encoder -> one LDM single-file state dict; ``family`` is ``"sd1"`` or ``"sd2"``."""
    text = {"sd1": clip_to_ldm, "sd2": open_clip_to_ldm}.get(family)
    if text is None:
        raise FormatError(
            f"Cannot write a {family!r} model as an LDM single-file checkpoint", "Use family sd1 or sd2"
        )
    return {**unet_to_ldm(unet_sd), **vae_to_ldm(vae_sd), **text(te_sd)}
