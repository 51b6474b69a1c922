"""kohya's per-block learning rates (down/mid/up_lr_weight): which UNet block a LoRA parameter sits in,
numbered as kohya's lists are (sd-scripts networks/lora.py, get_block_index).

Down (input) blocks count from the input conv IN00: down_blocks.I.(resnets|attentions).J is IN(1 + 3I + J), a
downsampler IN(3 + 3I); up (output) blocks: OUT(3I + J), an upsampler OUT(3I + 2). SD 1.x/2.x have 4 levels
(12 blocks a side) and one mid weight; SDXL 3 levels (input_blocks 0-8, output_blocks 0-8) and 3 mid weights,
its middle_block 0 (resnet), 1 (attention), 2 (resnet). A family gives these counts as FamilyInfo.lr_blocks.
"""

from __future__ import annotations

import math
import re

from ..config.train import split_preset

_UPDOWN = re.compile(
    r"(?:^|\.)(up|down)_blocks\.(\d+)\.(resnets|attentions|upsamplers|downsamplers)\.(\d+)\."
)
_MID = re.compile(r"(?:^|\.)mid_block\.(resnets|attentions)\.(\d+)\.")


def unet_block(param_name: str, mid_blocks: int) -> tuple[str, int] | None:
    """("down", i) / ("up", i) / ("mid", i) of a UNet parameter (diffusers names), None outside the blocks
    (time embedding, conv_in, conv_out)."""
    m = _UPDOWN.search(param_name)
    if m:
        side, i, kind, j = m.group(1), int(m.group(2)), m.group(3), int(m.group(4))
        index = 3 * i + (2 if kind.endswith("samplers") else j)
        return (side, index + 1) if side == "down" else (side, index)
    mid = _MID.search(param_name)
    if mid is None:
        return None
    if mid_blocks == 1:
        return ("mid", 0)
    return ("mid", 1 if mid.group(1) == "attentions" else 2 * int(mid.group(2)))  # resnet, attention, resnet


def side_weights(value: list[float] | str | None, blocks: int) -> list[float] | None:
    """down/up_lr_weight for a UNet with `blocks` blocks a side: a list as given, a preset such as "sine+0.5"
    spread over the `blocks` blocks as kohya does (sd-scripts networks/lora.py, get_block_lr_weight)."""
    if not isinstance(value, str):
        return value
    preset = split_preset(value)
    if preset is None:  # the config admits no other string
        raise ValueError(f"not a block-weight preset: {value}")
    name, added = preset
    last = blocks - 1
    if name == "zeros":
        curve = [0.0] * blocks
    elif name in ("sine", "cosine"):  # a quarter sine wave from 0 (first block) to 1 (last), or reversed
        curve = [math.sin(math.pi * (i / last) / 2) for i in range(blocks)]
    else:  # linear, reverse_linear
        curve = [i / last for i in range(blocks)]
    if name in ("cosine", "reverse_linear"):
        curve.reverse()
    return [w + added for w in curve]
