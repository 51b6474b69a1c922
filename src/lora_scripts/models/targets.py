"""Which modules get a LoRA: kohya sd-scripts' defaults, so files match what users expect from it."""

from __future__ import annotations

from torch import nn

# kohya networks/lora.py: every Linear / 1x1 Conv2d inside these blocks
# (attention q/k/v/out, ff, proj_in/out).
UNET_BLOCKS = ("Transformer2DModel",)
# ...and with LoCon (conv_rank set) also these blocks, whose 3x3 convs get conv_rank.
UNET_CONV_BLOCKS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
# CLIP text encoder: self-attention q/k/v/out_proj and the MLP's fc1/fc2.
TEXT_BLOCKS = ("CLIPAttention", "CLIPMLP", "CLIPSdpaAttention", "CLIPFlashAttention2")


def find_targets(model: nn.Module, blocks: tuple[str, ...]) -> dict[str, str]:
    """Module name -> "linear" | "conv1x1" | "conv3x3" for every trainable child of the named block types."""
    found: dict[str, str] = {}
    for block_name, block in model.named_modules():
        if type(block).__name__ not in blocks:
            continue
        for child_name, child in block.named_modules():
            if not child_name:
                continue
            full = f"{block_name}.{child_name}" if block_name else child_name
            if isinstance(child, nn.Linear):
                found[full] = "linear"
            elif isinstance(child, nn.Conv2d):
                found[full] = "conv1x1" if child.kernel_size == (1, 1) else "conv3x3"
    return found


def unet_targets(unet: nn.Module, with_conv: bool) -> dict[str, str]:
    targets = find_targets(unet, UNET_BLOCKS)
    if with_conv:
        targets.update(find_targets(unet, UNET_CONV_BLOCKS))
    return targets


def text_targets(text_encoder: nn.Module) -> dict[str, str]:
    return find_targets(text_encoder, TEXT_BLOCKS)
