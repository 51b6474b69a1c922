"""Read a LoRA file from any common trainer into module-path weights for one loaded base model.

kohya sd-scripts / our own files (`lora_unet_*`, `lora_te_*`, LoCon conv keys) go through the one key table
in save/; diffusers and PEFT files (`unet.<path>.lora_A.weight`) already name module paths. A file whose
modules or shapes do not fit the base model is refused, naming both model families.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ..errors import FormatError
from ..inject.dora import dora_notes, layer_scale
from ..inject.lora import LoraWeights
from ..inject.lyco import LycoWeights
from ..models.registry import display_name, family_info
from .kohya import from_kohya, read_lora_file
from .kohya_keys import name_table, split_key, te_canonical
from .lora_family import detect_lora_family, lora_widths

log = logging.getLogger(__name__)
Parts = dict[str, dict[str, LoraWeights | LycoWeights]]  # {"unet"|"te": {module path: weights}}
PEFT_PREFIXES = {"unet.": "unet", "text_encoder.": "te", "base_model.model.": "unet"}
UNSUPPORTED = {
    ".hada_t1": "LoHa with CP/Tucker",
    ".lokr_t2": "LoKr with CP/Tucker",
    ".lora_mid.": "LoCon with CP/Tucker",
}


def target_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if n and isinstance(m, (nn.Linear, nn.Conv2d))}


def load_lora(path: Path, models: dict[str, nn.Module], family: str) -> Parts:
    """LoRA weights of `path` for `models` ({"unet": ..., "te": ...}) of base family `family`."""
    tensors, meta = read_lora_file(str(path))
    _refuse_unsupported(path, tensors)
    theirs = detect_lora_family(lora_widths(tensors), meta)[0]
    _refuse_other_encoders(path, tensors, theirs, family, "te2" in models)
    modules = {c: target_modules(m) for c, m in models.items()}
    unet_names = family_info(family).unet_names
    if any(k.startswith(("lora_unet_", "lora_te")) for k in tensors):  # kohya: LoRA, LoCon, LoHa, LoKr
        parts = _from_kohya_file(path, tensors, modules, (theirs, family), unet_names)
    elif any(".lora_A." in k or ".lora_B." in k for k in tensors):
        parts = _from_peft_file(path, tensors, modules, (theirs, family), meta)
    else:
        raise not_a_lora(path, tensors)
    out: Parts = {c: {} for c in parts}
    for component, weights in parts.items():
        for module_path, w in weights.items():
            module = modules[component][module_path]
            fitted = _fit(module, w)
            if fitted is None:
                found = w.shape if isinstance(w, LycoWeights) else w.down.shape
                shape = f"{tuple(found)} for '{module_path}' ({_size(module)})"
                _refuse_family(path, theirs, family, f"a weight has the shape {shape}")
            out[component][module_path] = fitted
    for note in dora_notes(path, [w for weights in out.values() for w in weights.values()]):
        log.warning(note)
    return out


def refuse_other_family(path: Path, tensors: dict[str, torch.Tensor], meta: dict, family: str) -> None:
    """Before a model loads (init_lora's pre-flight): a LoRA whose text encoders or layer widths say another
    family than the base model's is one sentence (metadata alone is not trusted for this)."""
    theirs, how = detect_lora_family(lora_widths(tensors), meta)
    _refuse_other_encoders(path, tensors, theirs, family, family == "sdxl")
    if theirs and theirs != family and not how.startswith("metadata"):
        _refuse_family(path, theirs, family, how)


def _refuse_other_encoders(path: Path, tensors, theirs: str | None, family: str, two_here: bool) -> None:
    two_encoders = any(k.startswith(("lora_te1_", "lora_te2_", "text_encoder_2.")) for k in tensors)
    if two_encoders != two_here and any(k.startswith(("lora_te", "text_encoder")) for k in tensors):
        detail = "it has SDXL's two text encoders" if two_encoders else "it has one text encoder"
        _refuse_family(path, "sdxl" if two_encoders else theirs, family, detail)


def not_a_lora(path: Path, tensors: dict[str, torch.Tensor]) -> FormatError:
    return FormatError(
        f"'{path}' is not a LoRA file: it has no lora_down/lora_up or lora_A/lora_B weights "
        f"(first tensor: '{next(iter(tensors), 'none')}')",
        "Put only LoRA .safetensors files in the LoRA folder; base checkpoints go in --model",
    )


def _refuse_unsupported(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    for marker, kind in UNSUPPORTED.items():
        if any(marker in k for k in tensors):
            raise FormatError(
                f"'{path}' is a {kind} file, which lora-scripts cannot read yet",
                "Use a plain LoRA or LoCon file (lora_down/lora_up weights)",
            )


def _from_kohya_file(path, tensors, modules, families, unet_names: str = "diffusers") -> Parts:
    tables = {c: name_table(c, list(mods), unet_names) for c, mods in modules.items()}
    lora = {k: v for k, v in tensors.items() if split_key(k) is not None}
    names = {split_key(k)[0] for k in lora}
    unknown = sorted(n for n in names if not any(n in t for t in tables.values()))
    if unknown:
        _refuse_family(path, *families, f"the base model has no module '{unknown[0]}'")
    try:
        return from_kohya(lora, {c: list(m) for c, m in modules.items()}, unet_names)
    except FormatError as exc:  # a damaged module: say which file
        raise FormatError(f"'{path}': {exc.what}", exc.hint) from exc


def _from_peft_file(path, tensors, modules, families, meta) -> Parts:
    config = json.loads(meta.get("lora_adapter_metadata") or "{}")
    te_paths = {te_canonical(p): p for p in modules.get("te", {})}
    groups: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        component, rest = _peft_component(key)
        match = re.fullmatch(r"(.+)\.(lora_A|lora_B)(?:\.default)?\.weight|(.+)\.(alpha)", rest)
        if component is None or match is None:
            raise FormatError(
                f"Tensor '{key}' in '{path}' is not a LoRA weight", "Use a LoRA .safetensors file"
            )
        module, part = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), "alpha")
        if component == "te":
            module = te_paths.get(te_canonical(module), module)
        groups.setdefault((component, module), {})[part] = value
    out: Parts = {c: {} for c in modules}
    for (component, module), group in groups.items():
        if module not in modules.get(component, {}) or "lora_A" not in group or "lora_B" not in group:
            _refuse_family(path, *families, f"the base model has no module '{module}'")
        down, up = group["lora_A"].float(), group["lora_B"].float()
        alpha = float(group["alpha"]) if "alpha" in group else _peft_alpha(config, component, module, down)
        out[component][module] = LoraWeights(down=down, up=up, alpha=alpha)
    return out


def _peft_component(key: str) -> tuple[str | None, str]:
    for prefix, component in PEFT_PREFIXES.items():
        if key.startswith(prefix):
            return component, key[len(prefix) :]
    return None, key


def _peft_alpha(config: dict, component: str, module: str, down: torch.Tensor) -> float:
    """diffusers keeps LoraConfig in the `lora_adapter_metadata` header; without it the scale is 1."""
    prefix = "unet" if component == "unet" else "text_encoder"
    for pattern, alpha in (config.get(f"{prefix}.alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(config.get(f"{prefix}.lora_alpha", down.shape[0]))


def _fit(module: nn.Module, w: LoraWeights | LycoWeights) -> LoraWeights | LycoWeights | None:
    """Weights in the layout `module` needs (linear vs 1x1 conv), or None when the shapes do not fit."""
    if isinstance(w, LycoWeights):
        weight = module.weight.shape
        fits = w.shape[0] == weight[0] and math.prod(w.shape) == math.prod(weight)
        return replace(w, shape=tuple(weight)) if fits else None
    if isinstance(module, nn.Linear):
        down, up = w.down.flatten(1), w.up.flatten(1)
        ok = down.shape[1] == module.in_features and up.shape == (module.out_features, down.shape[0])
    else:
        down = w.down if w.down.dim() == 4 else w.down[:, :, None, None]
        up = w.up.flatten(1)[:, :, None, None]
        kernel = (module.in_channels, *module.kernel_size)
        ok = tuple(down.shape[1:]) == kernel and tuple(up.shape[:2]) == (module.out_channels, down.shape[0])
    scale = w.dora_scale
    if scale is not None:  # dora_scale in the layer's layout too: [1, in(, 1, 1)] or [out, 1(, 1, 1)]
        scale = layer_scale(scale, (up.shape[0], *down.shape[1:]))
    return replace(w, down=down, up=up, dora_scale=scale) if ok else None


def _size(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"{module.in_features} -> {module.out_features}"
    return f"{module.in_channels} -> {module.out_channels}, kernel {tuple(module.kernel_size)}"


def _refuse_family(path: Path, theirs: str | None, ours: str, detail: str) -> None:
    ours_name = display_name(ours)
    if theirs and theirs != ours:
        what = f"'{path}' is a LoRA for {display_name(theirs)}, but the base model is {ours_name} ({detail})"
    else:
        what = f"'{path}' does not fit this {ours_name} base model ({detail})"
    raise FormatError(what, "Use a LoRA made for this base model, or pick the base model it was trained on")
