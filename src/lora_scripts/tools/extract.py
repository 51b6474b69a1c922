"""`lora extract`: a LoRA from a fine-tuned checkpoint minus its base, by SVD of each target's delta."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig, NetworkConfig
from ..errors import ConfigError, ModelError
from ..inject.lora import LoraWeights
from ..models.registry import load_model
from ..save.kohya import to_kohya
from ..save.kohya_keys import kohya_name
from .lora_io import check_output, write_lora
from .lowrank import Kept, from_delta
from .report import overall, progress

log = logging.getLogger(__name__)


@torch.no_grad()
def extract_component(
    tuned: nn.Module, base: nn.Module, targets: dict[str, str], ranks: tuple[int, int | None], min_diff: float
) -> tuple[dict[str, LoraWeights], dict[str, Kept]]:
    """module path -> LoRA of (tuned - base) for every target whose weights differ by more than min_diff."""
    rank, conv_rank = ranks
    tuned_modules, base_modules = dict(tuned.named_modules()), dict(base.named_modules())
    out, kept = {}, {}
    for path, kind in progress(sorted(targets.items()), "Extracting", total=len(targets)):
        if path not in tuned_modules:
            raise ModelError(
                f"The fine-tuned model has no module '{path}'",
                "Extract only between models of one architecture",
            )
        w_tuned, w_base = tuned_modules[path].weight, base_modules[path].weight
        if w_tuned.shape != w_base.shape:
            raise ModelError(
                f"Module '{path}' is {list(w_tuned.shape)} in the fine-tuned model but {list(w_base.shape)} "
                "in the base",
                "Extract only between models of one architecture",
            )
        change = w_tuned.float() - w_base.float()
        if float(change.abs().max()) <= min_diff:
            continue
        out[path], kept[path] = from_delta(change, conv_rank if kind == "conv3x3" else rank)
    return out, kept


def extracted_metadata(
    family_facts: dict[str, str], names: tuple[str, str, str], ranks: tuple[int, int | None], share: float
) -> dict[str, str]:
    tuned, base, out_name = names
    rank, conv_rank = ranks
    return {
        **family_facts,
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(rank),
        "ss_network_args": json.dumps(
            {"conv_dim": str(conv_rank), "conv_alpha": str(conv_rank)} if conv_rank else {}
        ),
        "ss_sd_model_name": base,
        "ss_output_name": out_name,
        "ss_training_comment": f"extracted by lora-scripts from '{tuned}' minus '{base}' at rank {rank}"
        f"{f' (conv {conv_rank})' if conv_rank else ''}: {share:.2%} of the delta energy kept",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.implementation": "diffusers",
        "modelspec.title": out_name,
    }


def run_extract(
    tuned: str,
    base: str,
    out: Path,
    rank: int,
    conv_rank: int | None = None,
    precision: str = "fp16",
    overwrite: bool = False,
    min_diff: float = 1e-6,
) -> dict[str, Kept]:
    for option, value in (("--rank", rank), ("--conv-rank", conv_rank)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, not {value}", "e.g. --rank 16")
    check_output(out, overwrite)
    t = load_model(ModelConfig(base_model=tuned))
    b = load_model(ModelConfig(base_model=base))
    if t.info != b.info:
        raise ModelError(
            f"'{tuned}' is {t.info.display_name} but the base '{base}' is {b.info.display_name}",
            "Give the base it was fine-tuned from",
        )
    ranks = (rank, conv_rank)
    net = NetworkConfig(lora_rank=rank, conv_rank=conv_rank, train_text_encoder=True)
    tuned_modules, base_modules = t.adapter_modules(), b.adapter_modules()
    parts, kept = {}, {}
    for component in b.trained_components(net):  # the UNet and every text encoder (SDXL: te1, te2)
        parts[component], found = extract_component(
            tuned_modules[component], base_modules[component], b.lora_targets(component, net), ranks, min_diff
        )
        kept.update({kohya_name(component, p, b.info.unet_names): k for p, k in found.items()})
    if not kept:
        raise ModelError(
            f"'{tuned}' and '{base}' have the same weights in every LoRA target module",
            "Check that the first model is the fine-tuned one and the second its base",
        )
    text = {c: len(m) for c, m in parts.items() if c != "unet"}
    log.info(
        "Text encoder: %s",
        ", ".join(f"{c} {n} modules changed" for c, n in text.items() if n) or "unchanged, not extracted",
    )
    names = (Path(tuned).name, Path(base).name, out.stem)
    meta = extracted_metadata(t.metadata_facts(), names, ranks, overall(kept))
    if not any(text.values()):
        meta["ss_network_train_unet_only"] = "True"
    write_lora(to_kohya(parts, precision, b.info.unet_names), out, meta)
    return kept
