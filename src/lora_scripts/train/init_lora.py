"""Continue from an existing LoRA: a kohya file (ours or sd-scripts'), a PEFT/diffusers file (image route),
or a PEFT adapter folder (LLM route); the family's adapter format says which."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ..config import NetworkConfig
from ..errors import ConfigError, FormatError
from ..inject.dora import check_trainable
from ..inject.lora import KIND_NAMES, LoraWeights, inject, network_kind, rank_counts, write_weights
from ..inject.lyco import LycoWeights, lyco_kind
from ..save.kohya import module_weights, read_lora_file
from ..save.kohya_keys import group_modules
from ..save.lora_family import lora_downs
from ..save.lora_read import load_lora, not_a_lora, refuse_other_family
from ..save.peft_adapter import adapter_weights

log = logging.getLogger(__name__)


def check_init_lora(net: NetworkConfig, adapter_format: str = "kohya", base_family: str | None = None) -> int:
    """Before anything is written: the file (or PEFT folder) reads, holds LoRA modules, is of the base
    model's family (when given), and its rank fits the config's."""
    weights = _RANK_READERS[adapter_format](net.init_lora, base_family)
    check_trainable(net.init_lora, weights)  # a per-row DoRA: its own sentence before the kind check
    _check_kind(net, {network_kind(w) for w in weights})
    linear, conv = rank_counts(weights)  # linear layers carry lora_rank; 3x3 convs conv_rank
    file_rank = (linear or conv).most_common(1)[0][0][0]
    if "lora_rank" in net.model_fields_set and net.lora_rank != file_rank:
        raise ConfigError(
            f"lora_rank is {net.lora_rank} but init_lora '{net.init_lora}' has rank {file_rank}",
            "Remove lora_rank from the config (it is read from the file) or use a LoRA of that rank",
        )
    return file_rank


def _check_kind(net: NetworkConfig, kinds: set[str]) -> None:
    """The file's network type is the config's: the saved file and its metadata are of one type."""
    wanted = "lora" if net.network_type == "locon" else net.network_type
    if kinds != {wanted}:
        names = " and ".join(KIND_NAMES[k] for k in sorted(kinds))
        raise ConfigError(
            f"init_lora '{net.init_lora}' is a {names} file but network_type is {net.network_type}",
            f"Set network_type: {sorted(kinds)[0]} to continue it, or start without init_lora",
        )


def _kohya_downs(path: str, base_family: str | None) -> list[LoraWeights | LycoWeights]:
    """Each module's weights (a kohya file: LoRA, DoRA, LoHa, LoKr), or its down weight (PEFT/diffusers);
    a file of another family than `base_family` (when given) is refused first."""
    tensors, meta = read_lora_file(path, what="init_lora")
    if base_family is not None:
        refuse_other_family(Path(path), tensors, meta, base_family)
    groups, _other = group_modules(tensors)
    try:
        downs = [module_weights(n, g) for n, g in groups.items() if "down" in g or lyco_kind(g)]
    except FormatError as exc:  # a damaged module: say which file
        raise FormatError(f"init_lora '{path}': {exc.what}", exc.hint) from exc
    downs = downs or [LoraWeights(down, down, 1.0) for down in lora_downs(tensors).values()]
    if not downs:
        raise not_a_lora(Path(path), tensors)
    return downs


def _peft_downs(path: str, _base_family: str | None) -> list[LoraWeights]:
    return list(adapter_weights(Path(path).expanduser())[0].values())


def _peft_parts(path: Path, models: dict[str, nn.Module], family: str) -> dict[str, dict[str, LoraWeights]]:
    """The adapter's layers for the one model of a PEFT family, each checked against the layer it adds to."""
    ((component, model),) = models.items()
    weights, _conf = adapter_weights(path.expanduser())
    layers = dict(model.named_modules())
    for name, w in weights.items():
        layer = layers.get(name)
        fits = isinstance(layer, nn.Linear) and (layer.in_features, layer.out_features) == (
            w.down.shape[1],
            w.up.shape[0],
        )
        if not fits:
            here = f"{layer.in_features}->{layer.out_features}" if isinstance(layer, nn.Linear) else "missing"
            raise ConfigError(
                f"init_lora '{path}' does not fit this base model: its layer {name} is "
                f"{w.down.shape[1]}->{w.up.shape[0]}, here it is {here} (it was trained on another model)",
                "Use an adapter trained on this base_model, or the base_model it was trained on",
            )
    return {component: weights}


_RANK_READERS = {"kohya": _kohya_downs, "peft": _peft_downs}
_PART_READERS = {"kohya": load_lora, "peft": _peft_parts}  # kohya: the reader `generate` uses too


def apply_init_lora(
    net: NetworkConfig, models: dict[str, nn.Module], family: str, adapter_format: str = "kohya"
) -> dict[str, dict[str, LoraWeights]]:
    """Inject exactly the file's modules with its ranks/alphas (and DoRA magnitudes) and load its weights."""
    file_rank = check_init_lora(net, adapter_format)
    parts = _PART_READERS[adapter_format](Path(net.init_lora), models, family)
    for component, weights in parts.items():
        if weights:
            kinds = {network_kind(w) for w in weights.values()}
            if len(kinds) > 1:
                raise ConfigError(
                    f"init_lora '{net.init_lora}' mixes {' and '.join(sorted(kinds))} modules",
                    "Continue from a file of one network type",
                )
            inject(
                models[component],
                {n: w.rank for n, w in weights.items()},
                {n: w.alpha for n, w in weights.items()},
                net.lora_dropout,
                use_dora=any(getattr(w, "magnitude", None) is not None for w in weights.values()),
                kind=kinds.pop(),
            )
            try:
                write_weights(models[component], weights)
            except RuntimeError as exc:  # a LoKr factored differently from peft's own split
                raise ConfigError(
                    f"init_lora '{net.init_lora}' has {component} weights laid out unlike this trainer's "
                    f"({str(exc).splitlines()[0][:100]})",
                    "Continue from a file this trainer (or LyCORIS with default factors) wrote",
                ) from exc
    modules = ", ".join(f"{len(w)} {NAMES.get(c, c)} modules" for c, w in parts.items())
    log.info("Continuing from %s: %s, rank %d", net.init_lora, modules, file_rank)
    return parts


NAMES = {"unet": "UNet", "te": "text-encoder", "llm": "language-model"}
