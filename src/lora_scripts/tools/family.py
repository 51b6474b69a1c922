"""Where in the model each of a LoRA's modules sits, for reports (which base it is for: save/lora_family)."""

from __future__ import annotations

import re

from ..inject.lora import LoraWeights
from ..inject.lyco import LycoWeights
from ..save.kohya_keys import TE, UNET


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


def kind_of(name: str, w: LoraWeights | LycoWeights) -> str:
    """attention / feed-forward / proj in/out / resnet+conv (LoCon) / other."""
    if re.search(r"(resnets|downsamplers|upsamplers)_\d", name) or w.kernel not in ((), (1, 1)):
        return "resnet/conv (LoCon)"
    if re.search(r"(attn\d?_to_(q|k|v|out_0)|self_attn_(q|k|v|out)_proj)$", name):
        return "attention"
    if re.search(r"(ff_net_\d(_proj)?|mlp_fc\d)$", name):
        return "feed-forward"
    if re.search(r"proj_(in|out)$", name):
        return "proj in/out"
    return "other"
