"""DoRA for the image route, in the layout kohya/LyCORIS files carry and the WebUIs apply: one magnitude per
INPUT column of the weight (`dora_scale`, shape [1, in] or [1, in, 1, 1]; LyCORIS's wd_on_output=False).

A1111 (extensions-builtin/Lora/network.py apply_weight_decompose) and ComfyUI/Forge (weight_adapter/base.py
weight_decompose, input-axis branch) build the new weight as

    W' = dora_scale * (W + s * up @ down) / ||W + s * up @ down||_col,   s = alpha / rank,

the norm taken over every axis but the input one. peft's own DoRA normalises per output row, which those
clients do not read back, so the same formula is trained here as a peft LoRA variant (peft's LoraVariant
seam): W' x = (W + s * up @ down)(c * x) with c = dora_scale / ||.||_col, i.e. the plain LoRA forward on the
input scaled per channel; the norm is detached from the gradient, as peft does after the DoRA paper (4.3).

Files of current LyCORIS (wd_on_output=True, its default) carry one magnitude per OUTPUT row instead
(dora_scale [out, 1] or [out, 1, 1, 1]). They are applied with LyCORIS's own rule for that axis
(lycoris/modules/locon.py apply_weight_decompose): W' = dora_scale * (W + s * up @ down) / (||.||_row + eps),
the norm over every axis but the output one, eps = float32's. The clients do not: A1111 always divides by
the column norm (the [out, 1] scale broadcasts against the [1, in] norm into a per-element factor), and
ComfyUI divides by the row norm of the base weight W alone, not of W + s * up @ down.
"""

from __future__ import annotations

import math

import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.layer import LoraVariant
from torch import nn

from ..errors import ConfigError


class ColumnMagnitude(nn.Module):
    """A layer's trained magnitude, `weight` in dora_scale's shape: [1, in] or [1, in, 1, 1]."""

    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(scale)


def column_norm(weight: torch.Tensor) -> torch.Tensor:
    """||W||_col: the norm of each input column (over every axis but 1), kept in dora_scale's shape."""
    dims = (0, *range(2, weight.dim()))
    return torch.linalg.vector_norm(weight, dim=dims, keepdim=True)


def row_norm(weight: torch.Tensor) -> torch.Tensor:
    """||W||_row: the norm of each output row (over every axis but 0), kept as [out, 1] / [out, 1, 1, 1]."""
    return torch.linalg.vector_norm(weight, dim=tuple(range(1, weight.dim())), keepdim=True)


def scale_axis(scale_shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> str | None:
    """The axis of a dora_scale: "row" for one magnitude per output row (LyCORIS wd_on_output=True),
    "column" for one per input column (wd_on_output=False), None for neither (1x1 weights read alike)."""
    count = math.prod(scale_shape)
    if scale_shape and scale_shape[0] == weight_shape[0] and count == weight_shape[0]:
        return "row"
    if scale_shape and scale_shape[0] == 1 and count == weight_shape[1]:
        return "column"
    return None


def layer_scale(scale: torch.Tensor, weight_shape: tuple[int, ...]) -> torch.Tensor:
    """dora_scale in the layer's layout: [out, 1(, 1, 1)] on rows, [1, in(, 1, 1)] on columns."""
    lead = (-1, 1) if scale_axis(tuple(scale.shape), weight_shape) == "row" else (1, -1)
    return scale.reshape(*lead, *[1] * (len(weight_shape) - 2))


def column_weight(base: torch.Tensor, down: torch.Tensor, up: torch.Tensor, scale: float) -> torch.Tensor:
    """W + scale * up @ down, in the base weight's shape (float32 or wider)."""
    low_rank = up.flatten(1).to(torch.float32) @ down.flatten(1).to(torch.float32)
    return base.to(low_rank.dtype) + scale * low_rank.to(base.device).reshape(base.shape)


def dora_delta(base: torch.Tensor, down, up, scale: float, dora_scale: torch.Tensor) -> torch.Tensor:
    """W' - W at weight 1.0 against this base weight (float32), on the axis dora_scale has (module docstring);
    at weight w the clients apply W + w * (W' - W), and so do generate and `lora merge` (LyCORIS's own
    multiplier m, merged * (m * (dora_scale / norm - 1) + 1), agrees at m = 1 only)."""
    merged = column_weight(base, down, up, scale)
    if scale_axis(tuple(dora_scale.shape), tuple(merged.shape)) == "row":
        norm = row_norm(merged) + torch.finfo(merged.dtype).eps
    else:
        norm = column_norm(merged)
    new = merged * (dora_scale.to(merged).reshape(norm.shape) / norm)
    return new - base.to(new)


def _factor(module: LoraLayer, adapter: str) -> torch.Tensor:
    """c = dora_scale / ||W + s * up @ down||_col (norm detached), shaped to scale the layer's input."""
    base = module.get_base_layer().weight
    with torch.no_grad():
        norm = column_norm(column_weight(base, *_low_rank(module, adapter)))
    factor = module.lora_magnitude_vector[adapter].weight / norm
    return factor.flatten() if factor.dim() == 2 else factor  # linear: over the last axis of x


class ColumnDoraVariant(LoraVariant):
    """peft's variant hooks for one Linear or Conv2d LoRA layer (peft calls them with the layer)."""

    def supports_lora_conversion(self) -> bool:
        return False

    @staticmethod
    def init(module: LoraLayer, adapter_name: str, **kwargs) -> None:
        # up is zero at the start: W + s * up @ down = W, so the magnitude starts as ||W||_col (LyCORIS too)
        norm = column_norm(module.get_base_layer().weight.detach().float())
        module.lora_magnitude_vector[adapter_name] = ColumnMagnitude(norm)

    @staticmethod
    def forward(module: LoraLayer, active_adapter: str, x: torch.Tensor, result: torch.Tensor, **kwargs):
        scaled = x * _factor(module, active_adapter).to(x.dtype)
        lora_A, lora_B = module.lora_A[active_adapter], module.lora_B[active_adapter]
        dropout, scaling = module.lora_dropout[active_adapter], module.scaling[active_adapter]
        base = module.base_layer(scaled.to(result.dtype))
        return base + lora_B(lora_A(dropout(scaled))) * scaling

    @staticmethod
    def merge_safe(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        """orig_weight -> (orig_weight + s * up @ down) * c; c is kept for unmerge."""
        merged = column_weight(orig_weight, *_low_rank(module, active_adapter))
        factor = module.lora_magnitude_vector[active_adapter].weight.detach() / column_norm(merged)
        module._cache_store(f"{active_adapter}-column-factor", factor)
        return (merged * factor).to(orig_weight.dtype)

    @staticmethod
    def merge_unsafe(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> None:
        orig_weight.data = ColumnDoraVariant.merge_safe(module, active_adapter, orig_weight.data)

    @staticmethod
    def unmerge(module: LoraLayer, active_adapter: str, orig_weight: torch.Tensor) -> torch.Tensor:
        factor = module._cache_pop(f"{active_adapter}-column-factor")
        down, up, scale = _low_rank(module, active_adapter)
        unscaled = orig_weight.to(factor.dtype) / factor
        change = column_weight(torch.zeros_like(unscaled), down, up, scale)  # s * up @ down
        return (unscaled - change).to(orig_weight.dtype)


def _low_rank(module: LoraLayer, adapter: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    return module.lora_A[adapter].weight, module.lora_B[adapter].weight, module.scaling[adapter]


def add_column_dora(model: nn.Module, adapter: str) -> None:
    """Turn the plain peft LoRA layers of `model` into column-DoRA layers (magnitudes start at ||W||_col)."""
    for layer in model.modules():
        if isinstance(layer, LoraLayer) and adapter in layer.lora_A:
            layer.lora_variant[adapter] = ColumnDoraVariant()
            ColumnDoraVariant.init(layer, adapter)


def dora_scale_of(layer: nn.Module, adapter: str) -> torch.Tensor | None:
    """The layer's trained dora_scale, or None when it is not a column-DoRA layer."""
    if not isinstance(getattr(layer, "lora_variant", {}).get(adapter), ColumnDoraVariant):
        return None
    return layer.lora_magnitude_vector[adapter].weight.detach()


def dora_notes(path, weights) -> list[str]:
    """What a user should know about a file's DoRA modules before taking it to a client (empty if nothing)."""
    rows = sum(1 for w in weights if getattr(w, "dora_scale", None) is not None and w.dora_scale.shape[0] > 1)
    if not rows:
        return []
    return [
        f"'{path}' has {rows} DoRA modules with one magnitude per output row (LyCORIS wd_on_output=True): "
        "lora-scripts applies them with LyCORIS's formula, but A1111 divides by the input-column norm and "
        "ComfyUI by the base weight's row norm instead, so images made there differ from LyCORIS's"
    ]


def check_trainable(path, weights) -> None:
    """init_lora: refuse per-output-row DoRA modules, since training here is per input column."""
    if any(getattr(w, "dora_scale", None) is not None and w.dora_scale.shape[0] > 1 for w in weights):
        raise ConfigError(
            f"init_lora '{path}' is a DoRA with one magnitude per output row (LyCORIS wd_on_output=True), "
            "and lora-scripts trains DoRA with one per input column, so it cannot continue it",
            "Use it in generate, or bake it into the base with `lora merge` and train a new DoRA on that",
        )
