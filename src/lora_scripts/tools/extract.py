"""`lora extract`: a LoRA from a fine-tuned checkpoint minus its base, by SVD of each target's delta."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig, NetworkConfig
from ..errors import ConfigError, ModelError
from ..inject.lora import LoraWeights
from ..models.detect import locate
from ..models.family import FamilyInfo
from ..models.registry import detect_family, load_model
from ..save.kohya import to_kohya
from ..save.kohya_keys import kohya_name
from .lora_io import check_output, write_lora
from .lowrank import Kept, from_delta, rank_of
from .report import overall, progress

log = logging.getLogger(__name__)
# A text encoder's attention q/k/v/out_proj go into the file together or not at all: A1111 folds an OpenCLIP
# encoder's q/k/v (SDXL's lora_te2_, SD 2.x's lora_te_) into its packed in_proj and applies them only when all
# four are present, and diffusers cannot read an encoder's attention LoRA that has no out_proj. A member that
# did not change carries its own tiny or zero delta at its set's rank (diffusers scales a module whose rank
# differs from most of its encoder's by the wrong alpha).
WHOLE_SET = re.compile(r"^(lora_te[12]?_.+_self_attn)_(?:q|k|v|out)_proj$")


def whole_set(file_name: str) -> str | None:
    """The set a module's LoRA must travel with, by its name in the file; None when it may go alone."""
    m = WHOLE_SET.match(file_name)
    return m.group(1) if m else None


@torch.no_grad()
def extract_component(
    tuned: nn.Module,
    base: nn.Module,
    targets: dict[str, str],
    ranks: tuple[int, int | None],
    min_diff: float,
    set_of: Callable[[str], str | None] = lambda path: None,
) -> tuple[dict[str, LoraWeights], dict[str, Kept]]:
    """module path -> LoRA of (tuned - base) for every target whose weights differ by more than min_diff,
    and for the other members of a set (`set_of(path)`: WHOLE_SET) of which one does."""
    tuned_modules, base_modules = dict(tuned.named_modules()), dict(base.named_modules())
    out, kept = {}, {}
    below: dict[str, list[str]] = {}  # set -> its members left out so far

    def take(path: str, change: torch.Tensor, rank: int | None = None) -> None:
        rank = rank or (ranks[1] if targets[path] == "conv3x3" else ranks[0])
        out[path], kept[path] = from_delta(change, rank)

    for path in progress(sorted(targets), "Extracting", total=len(targets)):
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
        if float(change.abs().max()) > min_diff:
            take(path, change)
        elif (group := set_of(path)) is not None:
            below.setdefault(group, []).append(path)
    set_rank: dict[str, int] = {}
    for path, w in out.items():
        if (group := set_of(path)) is not None:
            set_rank[group] = max(set_rank.get(group, 1), rank_of(w))
    for path in (p for group, members in below.items() if group in set_rank for p in members):
        # at most the set's rank (a small, non-zero change could take more), then padded up to it
        change = tuned_modules[path].weight.float() - base_modules[path].weight.float()
        take(path, change, set_rank[set_of(path)])
        out[path] = _at_rank(out[path], set_rank[set_of(path)])
        kept[path].rank_out = rank_of(out[path])
    return out, kept


def _at_rank(w: LoraWeights, rank: int) -> LoraWeights:
    """The same delta with zero directions added up to `rank`, alpha scaled with it (same alpha/rank)."""
    k = rank_of(w)
    if k >= rank:
        return w
    down = torch.cat([w.down, w.down.new_zeros(rank - k, *w.down.shape[1:])])
    up = torch.cat([w.up, w.up.new_zeros(w.up.shape[0], rank - k, *w.up.shape[2:])], 1)
    return LoraWeights(down=down, up=up, alpha=w.alpha * rank / k)


def _file_sets(component: str, unet_names: str) -> Callable[[str], str | None]:
    return lambda path: whole_set(kohya_name(component, path, unet_names))


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


def _family_before_loading(model: str) -> FamilyInfo | None:
    """A file's or folder's family from its tensor names or configs alone (models/registry's detector, no
    weights read); None for a hub id, which cannot be looked into offline before loading."""
    source = locate(model)
    return None if source.kind == "hub" else detect_family(source).info


def _same_family(tuned: str, t: FamilyInfo | None, base: str, b: FamilyInfo | None) -> None:
    if t is not None and b is not None and t != b:
        raise ModelError(
            f"'{tuned}' is {t.display_name} but the base '{base}' is {b.display_name}",
            "Give the base it was fine-tuned from",
        )


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
    _same_family(tuned, _family_before_loading(tuned), base, _family_before_loading(base))
    t = load_model(ModelConfig(base_model=tuned))
    b = load_model(ModelConfig(base_model=base))
    _same_family(tuned, t.info, base, b.info)  # a hub id is known only once loaded
    ranks = (rank, conv_rank)
    net = NetworkConfig(lora_rank=rank, conv_rank=conv_rank, train_text_encoder=True)
    tuned_modules, base_modules = t.adapter_modules(), b.adapter_modules()
    parts, kept = {}, {}
    for component in b.trained_components(net):  # the UNet and every text encoder (SDXL: te1, te2)
        targets, sets = b.lora_targets(component, net), _file_sets(component, b.info.unet_names)
        parts[component], found = extract_component(
            tuned_modules[component], base_modules[component], targets, ranks, min_diff, sets
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
