"""Continue from an existing LoRA file: kohya (ours or sd-scripts') or PEFT/diffusers format."""

from __future__ import annotations

import logging
from collections import Counter

from torch import nn

from ..config import NetworkConfig
from ..errors import ConfigError, FormatError
from ..inject.lora import LoraWeights, inject, write_weights
from ..save.kohya import from_kohya, read_lora_file

log = logging.getLogger(__name__)
PEFT_PREFIXES = {"unet": ("unet.", "base_model.model."), "te": ("text_encoder.",)}


def read_init_lora(path: str, models: dict[str, nn.Module]) -> dict[str, dict[str, LoraWeights]]:
    tensors, _meta = read_lora_file(path)
    paths = {
        c: [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
        for c, model in models.items()
    }
    if any(k.startswith(("lora_unet_", "lora_te_")) for k in tensors):
        if any(k.startswith(("lora_te1_", "lora_te2_")) for k in tensors):
            raise FormatError(
                f"init_lora '{path}' is an SDXL LoRA", "Use a LoRA made for an SD 1.x/2.x model"
            )
        try:
            return from_kohya(tensors, paths)
        except FormatError as exc:
            raise FormatError(
                f"init_lora '{path}' does not fit this base model ({exc.what})",
                "Use a LoRA trained on the same model family",
            ) from exc
    if any(".lora_A." in k for k in tensors):
        return _from_peft(tensors, paths, path)
    raise FormatError(
        f"init_lora '{path}' is not a LoRA file (no lora_down/lora_A weights)", "Check the path"
    )


def _from_peft(tensors: dict, paths: dict[str, list[str]], path: str) -> dict[str, dict[str, LoraWeights]]:
    out: dict[str, dict[str, LoraWeights]] = {c: {} for c in paths}
    for key, down in tensors.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0]
        component, name = _peft_owner(module, paths)
        if component is None:
            raise FormatError(
                f"init_lora '{path}' has module '{module}' that this base model lacks",
                "Use a LoRA trained on the same model family",
            )
        up = tensors[key.replace(".lora_A.", ".lora_B.")]
        alpha = tensors.get(f"{module}.alpha")
        rank = down.shape[0]
        out[component][name] = LoraWeights(
            down.float(), up.float(), float(alpha) if alpha is not None else rank
        )
    return out


def _peft_owner(module: str, paths: dict[str, list[str]]) -> tuple[str | None, str]:
    for component, prefixes in PEFT_PREFIXES.items():
        for prefix in prefixes:
            name = module.removeprefix(prefix)
            if module.startswith(prefix) and name in paths.get(component, []):
                return component, name
    for component, names in paths.items():
        if module in names:
            return component, module
    return None, module


def apply_init_lora(net: NetworkConfig, models: dict[str, nn.Module]) -> dict[str, dict[str, LoraWeights]]:
    """Inject exactly the file's modules with its ranks/alphas and load its weights."""
    parts = read_init_lora(net.init_lora, models)
    ranks = Counter(w.down.shape[0] for part in parts.values() for w in part.values())
    if not ranks:
        raise FormatError(f"init_lora '{net.init_lora}' contains no LoRA modules", "Check the file")
    file_rank = ranks.most_common(1)[0][0]
    if "lora_rank" in net.model_fields_set and net.lora_rank != file_rank:
        raise ConfigError(
            f"lora_rank is {net.lora_rank} but init_lora '{net.init_lora}' has rank {file_rank}",
            "Remove lora_rank from the config (it is read from the file) or use a LoRA of that rank",
        )
    for component, weights in parts.items():
        if weights:
            inject(
                models[component],
                {n: w.down.shape[0] for n, w in weights.items()},
                {n: w.alpha for n, w in weights.items()},
                net.lora_dropout,
            )
            write_weights(models[component], weights)
    log.info(
        "Continuing from %s: %d UNet and %d text-encoder modules, rank %d",
        net.init_lora,
        len(parts.get("unet", {})),
        len(parts.get("te", {})),
        file_rank,
    )
    return parts
