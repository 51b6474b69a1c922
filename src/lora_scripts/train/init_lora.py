"""Continue from an existing LoRA file: kohya (ours or sd-scripts') or PEFT/diffusers format."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from torch import nn

from ..config import NetworkConfig
from ..errors import ConfigError
from ..inject.lora import LoraWeights, inject, write_weights
from ..save.kohya import read_lora_file
from ..save.lora_family import lora_downs
from ..save.lora_read import load_lora, not_a_lora

log = logging.getLogger(__name__)


def check_init_lora(net: NetworkConfig) -> int:
    """Before anything is written: the file reads, holds LoRA modules, and its rank fits the config's."""
    tensors, _meta = read_lora_file(net.init_lora, what="init_lora")
    ranks = Counter(int(down.shape[0]) for down in lora_downs(tensors).values())
    if not ranks:
        raise not_a_lora(Path(net.init_lora), tensors)
    file_rank = ranks.most_common(1)[0][0]
    if "lora_rank" in net.model_fields_set and net.lora_rank != file_rank:
        raise ConfigError(
            f"lora_rank is {net.lora_rank} but init_lora '{net.init_lora}' has rank {file_rank}",
            "Remove lora_rank from the config (it is read from the file) or use a LoRA of that rank",
        )
    return file_rank


def apply_init_lora(
    net: NetworkConfig, models: dict[str, nn.Module], family: str
) -> dict[str, dict[str, LoraWeights]]:
    """Inject exactly the file's modules with its ranks/alphas and load its weights.

    The file is read by the same reader `generate` uses, so every format and family check is shared."""
    file_rank = check_init_lora(net)
    parts = load_lora(Path(net.init_lora), models, family)
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
