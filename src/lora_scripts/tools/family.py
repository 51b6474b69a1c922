"""Which base model a LoRA was made for, and where in the model each of its modules sits."""

from __future__ import annotations

import re

from ..errors import FormatError
from ..inject.lora import LoraWeights
from ..models.detect import FAMILY_NAMES, WIDTH_FAMILY
from ..save.kohya_keys import TE, UNET

SDXL_TE = ("lora_te1_", "lora_te2_")


def detect_family(modules: dict[str, LoraWeights], metadata: dict[str, str]) -> tuple[str | None, str]:
    """(family or None, how it was found): prefixes, then tensor shapes, then the file's metadata."""
    if any(name.startswith(SDXL_TE) for name in modules):
        return "sdxl", "lora_te1_/lora_te2_ text-encoder prefixes"
    for name, w in modules.items():
        if name.startswith(UNET) and re.search(r"attn2_to_[kv]$", name):
            width = int(w.down.shape[1])
            if width in WIDTH_FAMILY:
                return WIDTH_FAMILY[width], f"cross-attention context width {width}"
    for name, w in modules.items():
        if name.startswith(TE) and name.endswith("_q_proj"):
            width = int(w.down.shape[1])
            if width in WIDTH_FAMILY:
                return WIDTH_FAMILY[width], f"text-encoder width {width}"
    return _family_from_metadata(metadata)


def _family_from_metadata(metadata: dict[str, str]) -> tuple[str | None, str]:
    version = metadata.get("ss_base_model_version", "")
    arch = metadata.get("modelspec.architecture", "")
    for prefix, family in (("sdxl", "sdxl"), ("sd_v2", "sd2"), ("sd_v1", "sd1")):
        if version.startswith(prefix):
            return family, f"metadata ss_base_model_version={version}"
    for prefix, family in (("stable-diffusion-xl", "sdxl"), ("stable-diffusion-v2", "sd2")):
        if arch.startswith(prefix):
            return family, f"metadata modelspec.architecture={arch}"
    if arch.startswith("stable-diffusion-v1"):
        return "sd1", f"metadata modelspec.architecture={arch}"
    return None, "not recognised from shapes or metadata"


def family_name(family: str | None) -> str:
    return FAMILY_NAMES.get(family or "", family or "unknown")


def check_same_family(path: str, lora_family: str | None, model_family: str, model: str) -> None:
    """Refuse a LoRA whose detected family differs from the model's (or from the other LoRAs')."""
    if lora_family is not None and lora_family != model_family:
        raise FormatError(
            f"'{path}' is an {family_name(lora_family)} LoRA, but {model} is {family_name(model_family)}",
            "Use a LoRA made for this base model",
        )


def group_of(name: str) -> str:
    """Module group for reports: TE / TE1 / TE2 / UNet down / mid / up / other."""
    if name.startswith("lora_te1_"):
        return "TE1"
    if name.startswith("lora_te2_"):
        return "TE2"
    if name.startswith(TE):
        return "TE"
    rest = name.removeprefix(UNET)
    for prefix, group in (
        ("down_blocks_", "UNet down"),
        ("mid_block_", "UNet mid"),
        ("up_blocks_", "UNet up"),
    ):
        if rest.startswith(prefix):
            return group
    # SDXL/LDM-named files (lora_unet_input_blocks_...) from other trainers
    for prefix, group in (("input_blocks_", "UNet down"), ("middle_block_", "UNet mid")):
        if rest.startswith(prefix):
            return group
    return "UNet up" if rest.startswith("output_blocks_") else "other"


def kind_of(name: str, w: LoraWeights) -> str:
    """attention / feed-forward / proj in/out / resnet+conv (LoCon) / other."""
    if re.search(r"(resnets|downsamplers|upsamplers)_\d", name) or (
        w.down.ndim == 4 and tuple(w.down.shape[2:]) != (1, 1)
    ):
        return "resnet/conv (LoCon)"
    if re.search(r"(attn\d?_to_(q|k|v|out_0)|self_attn_(q|k|v|out)_proj)$", name):
        return "attention"
    if re.search(r"(ff_net_\d(_proj)?|mlp_fc\d)$", name):
        return "feed-forward"
    if re.search(r"proj_(in|out)$", name):
        return "proj in/out"
    return "other"
