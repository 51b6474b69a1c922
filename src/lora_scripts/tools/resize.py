"""`lora resize`: SVD of each module's delta down to a lower rank (fixed, or by retained energy)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..inject.lora import LoraWeights
from .lora_io import auto_precision, check_output, kohya_tensors, read_lora, write_lora
from .lowrank import Kept, rank_of, resize
from .report import overall, progress


def check_target(rank: int | None, energy: float | None) -> None:
    if (rank is None) == (energy is None):
        raise ConfigError("Give exactly one of --rank and --energy", "e.g. --rank 8 or --energy 0.95")
    if rank is not None and rank < 1:
        raise ConfigError(f"--rank must be at least 1, not {rank}", "e.g. --rank 8")
    if energy is not None and not 0 < energy <= 1:
        raise ConfigError(f"--energy must be in (0, 1], not {energy}", "e.g. --energy 0.95 keeps 95%")


def is_conv3x3(w: LoraWeights) -> bool:
    return w.down.ndim == 4 and tuple(w.down.shape[2:]) != (1, 1)


def resize_modules(
    modules: dict[str, LoraWeights], rank: int | None, energy: float | None, conv_rank: int | None = None
) -> tuple[dict[str, LoraWeights], dict[str, Kept]]:
    """Every module re-factored; 3x3 conv modules use `conv_rank` when given."""
    out, kept = {}, {}
    for name, w in progress(sorted(modules.items()), "Resizing", total=len(modules)):
        target = conv_rank if is_conv3x3(w) and conv_rank is not None else rank
        out[name], kept[name] = resize(w, target, None if target is not None else energy)
    return out, kept


def one_alpha(modules: dict[str, LoraWeights]) -> dict[str, LoraWeights]:
    """The same deltas with one alpha, the largest rank (up scaled by old alpha / alpha). diffusers' kohya
    loader takes a model's most common alpha and drops its per-module alpha keys for attention and text
    encoder layers: with alpha = rank, ranks that differ there (--energy, or a module whose true rank is
    below --rank) loaded at wrong scales. A1111 and ComfyUI read each module's alpha either way."""
    alpha = float(max(rank_of(w) for w in modules.values()))
    return {n: LoraWeights(down=w.down, up=w.up * (w.alpha / alpha), alpha=alpha) for n, w in modules.items()}


def resized_metadata(
    metadata: dict[str, str],
    kept: dict[str, Kept],
    conv: set[str],
    target: tuple[int | None, float | None],
    source: str,
) -> dict[str, str]:
    """The input's metadata with the new dims, and a comment saying what was kept; `conv`: 3x3 modules."""
    rank, energy = target
    dim = str(rank) if rank is not None else "Dynamic"
    alpha = str(max(k.rank_out for k in kept.values()))  # one_alpha's
    before = sorted({k.rank_in for k in kept.values()})
    after = sorted({k.rank_out for k in kept.values()})
    how = f"rank {rank}" if rank is not None else f"energy {energy:g}"
    comment = (
        f"resized by lora-scripts from '{source}' ({how}): rank {_span(before)} -> {_span(after)}, "
        f"{overall(kept):.2%} of the delta energy kept"
    )
    if metadata.get("ss_training_comment"):
        comment += f"; {metadata['ss_training_comment']}"
    meta = {**metadata, "ss_network_dim": dim, "ss_network_alpha": alpha, "ss_training_comment": comment}
    args = _json(metadata.get("ss_network_args"))
    if "conv_dim" in args:
        conv_ranks = [k.rank_out for n, k in kept.items() if n in conv]
        args["conv_dim"], args["conv_alpha"] = str(max(conv_ranks)) if conv_ranks else dim, alpha
        meta["ss_network_args"] = json.dumps(args)
    return meta


def run_resize(
    source: Path,
    out: Path,
    rank: int | None,
    energy: float | None,
    conv_rank: int | None = None,
    precision: str = "auto",
    overwrite: bool = False,
) -> dict[str, Kept]:
    check_target(rank, energy)
    check_output(out, overwrite)
    lora = read_lora(source)
    modules, kept = resize_modules(lora.modules, rank, energy, conv_rank)
    modules = one_alpha(modules)
    conv = {n for n, w in lora.modules.items() if is_conv3x3(w)}
    meta = resized_metadata(lora.metadata, kept, conv, (rank, energy), source.name)
    write_lora(kohya_tensors(modules, auto_precision([lora], precision)), out, meta)
    return kept


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"
