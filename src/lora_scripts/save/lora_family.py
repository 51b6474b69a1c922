"""The one answer to "which base model was this LoRA file made for?", for generate, init_lora and the tools.

Order: SDXL's two text-encoder prefixes, then tensor shapes (the cross-attention context width, else the
text encoder's width), then the file's metadata. Shapes beat metadata because they are what a client really
applies; a header can be edited or copied from another file.
"""

from __future__ import annotations

import re

import torch

from ..errors import FormatError
from ..models.registry import display_name, family_for_width

SDXL_TE = ("lora_te1_", "lora_te2_", "text_encoder_2.")
CROSS_ATTN = re.compile(r"attn2[._]to_[kv]$")
TE_QUERY = re.compile(r"(^lora_te_|^text_encoder\.).*self_attn[._]q_proj$")
METADATA_VERSIONS = (("sdxl", "sdxl"), ("sd_v2", "sd2"), ("sd_v1", "sd1"))
MODELSPEC_ARCHS = (
    ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-v2", "sd2"),
    ("stable-diffusion-v1", "sd1"),
)


def lora_downs(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Module name -> down weight, for kohya (`x.lora_down.weight`) and PEFT (`x.lora_A[.default].weight`)."""
    out = {}
    for key, value in tensors.items():
        match = re.fullmatch(r"(.+)\.(?:lora_down|lora_A(?:\.default)?)\.weight", key)
        if match:
            out[match.group(1)] = value
    return out


def lora_widths(tensors: dict[str, torch.Tensor]) -> dict[str, int | None]:
    """Module name -> its down weight's input width (None without one), what detect_lora_family reads."""
    return {n: int(d.shape[1]) if d.dim() >= 2 else None for n, d in lora_downs(tensors).items()}


def detect_lora_family(widths: dict[str, int | None], metadata: dict[str, str]) -> tuple[str | None, str]:
    """(family or None, how it was found) from module name -> input width and the file's metadata."""
    if any(name.startswith(SDXL_TE) for name in widths):
        return "sdxl", "lora_te1_/lora_te2_ text-encoder prefixes"
    for pattern, what in ((CROSS_ATTN, "cross-attention context width"), (TE_QUERY, "text-encoder width")):
        for name, width in widths.items():
            if pattern.search(name) and width is not None:
                family = family_for_width(width)
                if family:
                    return family, f"{what} {width}"
    return _from_metadata(metadata)


def _from_metadata(metadata: dict[str, str]) -> tuple[str | None, str]:
    version = metadata.get("ss_base_model_version", "")
    arch = metadata.get("modelspec.architecture", "")
    for prefix, family in METADATA_VERSIONS:
        if version.startswith(prefix):
            return family, f"metadata ss_base_model_version={version}"
    for prefix, family in MODELSPEC_ARCHS:
        if arch.startswith(prefix):
            return family, f"metadata modelspec.architecture={arch}"
    if metadata.get("ss_v2") in ("True", "False"):
        return ("sd2" if metadata["ss_v2"] == "True" else "sd1"), f"metadata ss_v2={metadata['ss_v2']}"
    return None, "not recognised from shapes or metadata"


def check_same_family(path: str, lora_family: str | None, model_family: str, model: str) -> None:
    """Refuse a LoRA whose detected family differs from the model's (or from the other LoRAs')."""
    if lora_family is not None and lora_family != model_family:
        raise FormatError(
            f"'{path}' is an {display_name(lora_family)} LoRA, but {model} is {display_name(model_family)}",
            "Use a LoRA made for this base model",
        )
