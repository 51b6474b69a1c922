"""`lora merge`: bake weighted LoRAs (DoRA too) into a base checkpoint, written in the layout it was read in.

Single-file LDM in -> the same file's keys, dtypes and metadata out, with only the merged weights changed;
diffusers folder in -> a diffusers folder out (``save_pretrained``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from ..config import ModelConfig
from ..errors import FormatError, ModelError
from ..files import replacing_folder
from ..inject.dora import dora_delta
from ..inject.lora import LoraWeights
from ..models.detect import ModelSource, locate
from ..models.loader import text_family
from ..models.registry import detect_family, family_info, load_model
from ..save.atomic import atomic_save_safetensors
from ..save.kohya import DTYPES
from ..save.kohya_keys import name_table
from ..save.lora_family import check_same_family
from .lora_io import LoraFile, check_output, read_lora
from .lowrank import delta, rank_of, weight_shape
from .report import progress
from .weighted import parse_weighted

log = logging.getLogger(__name__)
MERGED_KEY = "lora_scripts.merged_loras"


def module_table(model: nn.Module, component: str, unet_names: str = "diffusers") -> dict[str, nn.Module]:
    """kohya module name -> Linear/Conv2d module, for every such module of the model."""
    modules = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    table = name_table(component, list(modules), unet_names)
    return {kohya: modules[path] for kohya, path in table.items()}


def plan_lora(tables: dict, lora: LoraFile, weight: float, model: str, plan: dict) -> int:
    """Find each module of `lora` in the model and check its shape, adding (weights, weight) to `plan`
    ({module: [...]}); nothing is changed yet, so a bad file leaves the model as it was."""
    for name, w in lora.modules.items():
        target = next((t[name] for t in tables.values() if name in t), None)
        if target is None:
            raise FormatError(
                f"'{lora.path}' changes module '{name}', which {model} does not have",
                "Use a LoRA made for this base model",
            )
        change, shape = weight_shape(w), target.weight.shape
        if math.prod(change) != target.weight.numel() or tuple(change[:2]) != tuple(shape[:2]):
            raise FormatError(
                f"'{lora.path}' changes '{name}' as a {list(change)} weight, but in {model} it is "
                f"{list(shape)}: the LoRA is for another model family",
                "Use a LoRA made for this base model",
            )
        plan.setdefault(target, []).append((w, weight))
    return len(lora.modules)


def module_change(base: torch.Tensor, w: LoraWeights, weight: float) -> torch.Tensor:
    """weight * the module's change, in `base`'s shape (float32); a DoRA's is W' - W against `base`, the
    ORIGINAL weight, as generate's LoraStack applies it."""
    if w.dora_scale is None:
        return delta(w, weight).reshape(base.shape).to(base.device)
    new = dora_delta(base.reshape(weight_shape(w)), w.down, w.up, w.alpha / rank_of(w), w.dora_scale)
    return (new * weight).reshape(base.shape)


@torch.no_grad()
def merge_into(modules: dict[str, nn.Module], family: str, loras: list, model: str) -> None:
    """`modules`: the family's components ({"unet", "te"}; SDXL {"unet", "te1", "te2"}). Every file is
    checked before any weight changes, and each module's changes are all computed from its original
    weight, so the order of the files does not matter (DoRA included)."""
    names = family_info(family).unet_names
    tables = {c: module_table(m, c, names) for c, m in modules.items()}
    check_families(loras, family, model)
    plan: dict[nn.Module, list[tuple[LoraWeights, float]]] = {}
    for lora, weight in loras:
        count = plan_lora(tables, lora, weight, model, plan)
        log.info("Merging %s x%g (%d modules)", lora.path.name, weight, count)
    for target, items in progress(list(plan.items()), "Merging LoRAs"):
        base = target.weight
        change = sum(module_change(base, w, weight) for w, weight in items)
        base += change.to(base.device, base.dtype)


def check_families(loras: list, family: str, model: str) -> None:
    for lora, _ in loras:
        check_same_family(str(lora.path), lora.family()[0], family, model)


def base_family(source: ModelSource) -> str | None:
    """The base's family before loading it: the registry's one detector (refuses SDXL, LoRA files...);
    None for a hub id, which cannot be looked into offline before loading."""
    return None if source.kind == "hub" else detect_family(source).info.name


def merge_single_file(path: str, loras: list, out: Path, precision: str | None) -> None:
    """Merge, then write the input file's tensors with the merged weights replaced (same keys, dtypes)."""
    model = load_model(ModelConfig(base_model=path))  # SD 1.x/2.x or SDXL
    merge_into(model.adapter_modules(), model.info.name, loras, f"base model '{path}'")
    ldm = model.single_file_tensors()
    original = load_file(path)
    with safe_open(path, framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    changed = 0
    for key, old in original.items():
        # only weights can change (text_projection etc. are rebuilt by the converter, not merged)
        new = ldm.get(key)
        if new is not None and key.endswith("weight") and not torch.equal(new.to(old.dtype), old):
            original[key] = new.to(old.dtype).contiguous()
            changed += 1
    log.info("%d weights of %s changed", changed, Path(path).name)
    if precision:
        original = {k: v.to(DTYPES[precision]) if v.is_floating_point() else v for k, v in original.items()}
    metadata[MERGED_KEY] = _record(loras)
    atomic_save_safetensors(original, out, metadata)


def merge_folder(location: str, local: bool, loras: list, out: Path, precision: str | None) -> None:
    """Merge into a diffusers pipeline and save it as a diffusers folder (written aside, then renamed)."""
    from diffusers import DiffusionPipeline

    try:  # the pipeline class the folder names: SD or SDXL, with its own scheduler kept
        pipe = DiffusionPipeline.from_pretrained(location, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Could not load the diffusers model '{location}': {str(exc).splitlines()[0]}",
            "Check that it is a complete Stable Diffusion diffusers folder",
        ) from exc
    if getattr(pipe, "text_encoder_2", None) is not None:
        family = "sdxl"
        modules = {"unet": pipe.unet, "te1": pipe.text_encoder, "te2": pipe.text_encoder_2}
    else:
        family = text_family(pipe.text_encoder.config.hidden_size, pipe.text_encoder.config.hidden_act)
        modules = {"unet": pipe.unet, "te": pipe.text_encoder}
    merge_into(modules, family, loras, f"base model '{location}'")
    if precision:
        pipe.to(dtype=DTYPES[precision])
    with replacing_folder(out) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "merged_loras.json").write_text(_record(loras), encoding="utf-8")


def _record(loras: list) -> str:
    return json.dumps(
        [
            {
                "file": lora.path.name,
                "weight": weight,
                "sshs_model_hash": lora.metadata.get("sshs_model_hash"),
            }
            for lora, weight in loras
        ]
    )


def run_merge(
    base: str, specs: list[str], out: Path, precision: str | None = None, overwrite: bool = False
) -> str:
    """Returns the layout written: "single_file" or "diffusers"."""
    if not specs:
        raise FormatError(
            "No LoRA given to merge", "e.g. lora merge BASE style.safetensors:0.8 -o out.safetensors"
        )
    parsed = [parse_weighted(spec) for spec in specs]  # argument mistakes first, before any file is judged
    source = locate(base)
    check_output(out, overwrite, folder_output=source.kind != "single_file")
    loras = [(read_lora(path, dora=True), weight) for path, weight in parsed]
    family = base_family(source)
    if family is not None:  # fail before loading the model
        check_families(loras, family, f"base model '{base}'")
    if source.kind == "single_file":
        merge_single_file(source.location, loras, out, precision)
        return "single_file"
    merge_folder(source.location, source.kind == "diffusers", loras, out, precision)
    return "diffusers"
