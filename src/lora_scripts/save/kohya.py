"""LoRA weights <-> kohya-format tensors (what A1111, ComfyUI and diffusers' load_lora_weights read)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from ..errors import FormatError
from ..inject.dora import layer_scale, scale_axis
from ..inject.lora import LoraWeights
from ..inject.lyco import LYCO_NAMES, LycoWeights, lyco_kind, lyco_shape, missing_lyco_parts
from .kohya_keys import (
    DORA_SCALE,
    SUFFIX_ALPHA,
    SUFFIX_DOWN,
    SUFFIX_UP,
    group_modules,
    kohya_name,
    name_table,
)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}


def to_kohya(
    parts: dict[str, dict[str, LoraWeights]], precision: str = "fp16", unet_names: str = "diffusers"
) -> dict[str, torch.Tensor]:
    """parts: {"unet": {module path: weights}, "te": {...}} -> flat kohya state dict."""
    dtype = DTYPES[precision]
    out: dict[str, torch.Tensor] = {}
    for component, modules in parts.items():
        for path, w in sorted(modules.items()):
            name = kohya_name(component, path, unet_names)
            if isinstance(w, LycoWeights):
                out.update(
                    {f"{name}.{k}": t.detach().to("cpu", dtype).contiguous() for k, t in w.tensors.items()}
                )
                out[name + SUFFIX_ALPHA] = torch.tensor(w.alpha, dtype=dtype)
                continue
            out[name + SUFFIX_DOWN] = w.down.detach().to("cpu", dtype).contiguous()
            out[name + SUFFIX_UP] = w.up.detach().to("cpu", dtype).contiguous()
            out[name + SUFFIX_ALPHA] = torch.tensor(w.alpha, dtype=dtype)
            if w.dora_scale is not None:
                out[f"{name}.{DORA_SCALE}"] = w.dora_scale.detach().to("cpu", dtype).contiguous()
    return out


def from_kohya(
    tensors: dict[str, torch.Tensor], paths: dict[str, list[str]], unet_names: str = "diffusers"
) -> dict[str, dict[str, LoraWeights]]:
    """Inverse of to_kohya for a model whose module paths are `paths` ({"unet": [...], "te": [...]})."""
    tables = {c: name_table(c, p, unet_names) for c, p in paths.items()}
    grouped, other = group_modules(tensors)
    if other:
        raise FormatError(f"Tensor '{other[0]}' is not a kohya LoRA key", "Use a LoRA .safetensors file")
    out: dict[str, dict[str, LoraWeights]] = {c: {} for c in paths}
    for name, group in grouped.items():
        component = next((c for c, table in tables.items() if name in table), None)
        if component is None:
            raise FormatError(
                f"LoRA module '{name}' does not exist in this base model", "Use a LoRA for this model"
            )
        out[component][tables[component][name]] = module_weights(name, group)
    return out


def module_weights(name: str, group: dict[str, torch.Tensor]) -> LoraWeights | LycoWeights:
    """One module's tensors (split_key's parts: down/up/alpha or LyCORIS's) as weights; the weight shape of
    a LoHa/LoKr is its delta's, found by the caller (`shape` is filled from the factors where it can be)."""
    kind = lyco_kind(group)
    if kind is not None and DORA_SCALE in group:
        raise FormatError(
            f"Module '{name}' is a {LYCO_NAMES[kind]} with DoRA (dora_scale), which lora-scripts cannot "
            "read yet",
            "Use a LoRA, LoCon, DoRA, LoHa or LoKr file",
        )
    if kind is not None:
        tensors = {p: v.float() for p, v in group.items() if p != "alpha"}
        missing = missing_lyco_parts(kind, set(tensors))
        if missing or "down" in group or "up" in group:
            what = f"lacks {', '.join(missing)}" if missing else "mixes lora_down/lora_up with them"
            raise FormatError(
                f"Module '{name}' has {LYCO_NAMES[kind]} tensors but {what}",
                "The file is damaged or of a kind lora-scripts cannot read; use a whole LoRA, LoHa or LoKr",
            )
        w = LycoWeights(kind, tensors, 0.0, ())
        w.shape = lyco_shape(w)
        w.alpha = float(group["alpha"]) if "alpha" in group else float(w.dim or 1)
        return w
    if "down" not in group or "up" not in group:
        raise FormatError(f"LoRA module '{name}' has no lora_down/lora_up pair", "Use a complete LoRA file")
    down, up = group["down"].float(), group["up"].float()
    alpha = float(group["alpha"]) if "alpha" in group else float(down.shape[0])
    scale = _dora_scale(name, group[DORA_SCALE], down, up) if DORA_SCALE in group else None
    return LoraWeights(down=down, up=up, alpha=alpha, dora_scale=scale)


def _dora_scale(name: str, scale: torch.Tensor, down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """dora_scale per input column ([1, in] / [1, in, 1, 1]: LyCORIS wd_on_output=False, ours) or per output
    row ([out, 1] / [out, 1, 1, 1]: wd_on_output=True, LyCORIS's default now), in the layer's layout."""
    shape = (int(up.shape[0]), *down.shape[1:])
    if scale_axis(tuple(scale.shape), shape) is None:
        raise FormatError(
            f"DoRA module '{name}' has a dora_scale of shape {list(scale.shape)}, neither one per input "
            f"column ([1, {shape[1]}]) nor one per output row ([{shape[0]}, 1])",
            "The file is damaged or not a LyCORIS/kohya DoRA; use the file as its trainer wrote it",
        )
    return layer_scale(scale.float(), shape)


def read_lora_file(path: str, what: str = "LoRA") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not Path(path).is_file():
        raise FormatError(f"{what} file '{path}' does not exist", "Check the path")
    try:
        with safe_open(path, framework="pt") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except Exception as exc:
        raise FormatError(
            f"{what} file '{path}' is not a readable .safetensors file", "Check the file"
        ) from exc
