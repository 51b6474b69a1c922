"""`lora merge-loras`: several weighted LoRAs -> one (exact concatenation, or SVD to a chosen rank)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError, FormatError
from ..inject.lora import LoraWeights
from ..save.lora_family import check_same_family
from .lora_io import LoraFile, auto_precision, check_output, kohya_tensors, read_lora, write_lora
from .lowrank import Kept, concat, rank_of, resize, weight_shape
from .report import overall, progress
from .resize import check_target, is_conv3x3, one_alpha
from .weighted import parse_weighted

SHARED_FACTS = ("ss_base_model_version", "ss_v2", "ss_sd_model_name", "modelspec.architecture")
MERGED_KEY = "lora_scripts.merged_from"


def check_families(loras: list[LoraFile]) -> str | None:
    """The family all the LoRAs share (None if none could be told); refuses a mix."""
    known = [(lora, lora.family()[0]) for lora in loras]
    first = next(((lora, fam) for lora, fam in known if fam), None)
    if first is None:
        return None
    for lora, family in known:
        check_same_family(str(lora.path), family, first[1], f"'{first[0].path}'")
    return first[1]


def combine(
    loras: list[tuple[LoraFile, float]], rank: int | None = None, energy: float | None = None
) -> tuple[dict[str, LoraWeights], dict[str, Kept]]:
    """Weighted sum per module; exact (ranks concatenated) unless `rank`/`energy` asks for an SVD."""
    names = sorted({name for lora, _ in loras for name in lora.modules})
    out, kept = {}, {}
    for name in progress(names, "Merging LoRAs", total=len(names)):
        items = [(lora.modules[name], k) for lora, k in loras if name in lora.modules]
        _check_shapes(name, [(lora, lora.modules[name]) for lora, _ in loras if name in lora.modules])
        joined = concat(items)
        if rank is None and energy is None:
            out[name] = joined
        else:
            out[name], kept[name] = resize(joined, rank, energy)
    return out, kept


def _check_shapes(name: str, found: list[tuple[LoraFile, LoraWeights]]) -> None:
    first_lora, first = found[0]
    for lora, w in found[1:]:
        if weight_shape(w) != weight_shape(first):
            raise FormatError(
                f"Module '{name}' changes a {list(weight_shape(first))} weight in '{first_lora.path}' but a "
                f"{list(weight_shape(w))} weight in '{lora.path}': the LoRAs are for different base models",
                "Merge only LoRAs made for the same base model",
            )


def merged_metadata(
    loras: list[tuple[LoraFile, float]], modules: dict[str, LoraWeights], kept: dict[str, Kept], out: Path
) -> dict[str, str]:
    ranks = [rank_of(w) for w in modules.values()]
    sources = [{"file": lora.path.name, "weight": k} for lora, k in loras]
    how = f"SVD, {overall(kept):.2%} of the delta energy kept" if kept else "exact concatenation"
    listing = " + ".join(f"{s['file']} x{s['weight']:g}" for s in sources)
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(max(ranks)),
        "ss_network_alpha": str(max(ranks)),
        "ss_output_name": out.stem,
        "ss_training_comment": f"merged by lora-scripts ({how}): {listing}",
        "ss_tag_frequency": json.dumps(_tags(loras), ensure_ascii=False),
        "modelspec.title": out.stem,
        MERGED_KEY: json.dumps(sources),
    }
    for key in SHARED_FACTS:
        values = {lora.metadata.get(key) for lora, _ in loras}
        if len(values) == 1 and None not in values:
            meta[key] = values.pop()
    conv = [rank_of(w) for w in modules.values() if is_conv3x3(w)]
    if conv:  # every module's alpha is one_alpha's, the largest rank
        meta["ss_network_args"] = json.dumps({"conv_dim": str(max(conv)), "conv_alpha": str(max(ranks))})
    return meta


def _tags(loras: list[tuple[LoraFile, float]]) -> dict[str, dict[str, int]]:
    merged: dict[str, dict[str, int]] = {}
    for lora, _ in loras:
        try:
            folders = json.loads(lora.metadata.get("ss_tag_frequency", "{}"))
        except ValueError:
            continue
        for folder, tags in folders.items() if isinstance(folders, dict) else ():
            key = folder if folder not in merged else f"{lora.path.stem}/{folder}"
            merged[key] = tags
    return merged


def run_merge_loras(
    specs: list[str],
    out: Path,
    rank: int | None = None,
    energy: float | None = None,
    precision: str = "auto",
    overwrite: bool = False,
) -> dict[str, Kept]:
    parsed = [parse_weighted(spec) for spec in specs]  # a bad weight is named before the count is judged
    if len(parsed) < 2:
        raise ConfigError(
            "merge-loras needs at least two LoRA files", "e.g. a.safetensors:0.7 b.safetensors:0.5"
        )
    if rank is not None or energy is not None:
        check_target(rank, energy)
    check_output(out, overwrite)
    loras = [(read_lora(path), weight) for path, weight in parsed]
    check_families([lora for lora, _ in loras])
    modules, kept = combine(loras, rank, energy)
    modules = one_alpha(modules)  # ranks differ where the LoRAs overlap partly: diffusers needs one alpha
    tensors = kohya_tensors(modules, auto_precision([lora for lora, _ in loras], precision))
    write_lora(tensors, out, merged_metadata(loras, modules, kept, out))
    return kept
