"""Before the first step: precision, LoRA injection (fresh or from init_lora), the step plan. No family names.

The config is never changed here: what a run resolves (batch size, steps per epoch, the precision that really
runs, the LoRA's rank as injected) lives in `RunPlan` and in the saved metadata.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from torch import nn

from ..config import NetworkConfig, TrainConfig
from ..errors import ConfigError
from ..inject.lora import inject_network, lora_parameters, rank_counts, read_weights
from ..models.family import TrainableModel
from ..models.lr_blocks import side_weights
from ..save.metadata import NetworkFacts
from .init_lora import apply_init_lora

log = logging.getLogger(__name__)
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class RunPlan:
    batch_size: int
    steps_per_epoch: int  # optimiser steps; the last window of an epoch may hold fewer micro-batches
    total_steps: int
    accumulation: int


def plan_steps(index, train: TrainConfig, batch_size: int) -> RunPlan:
    """`index`: the training set (data/dataset.DatasetIndex, data/chat_dataset.ChatIndex)."""
    batches = len(index.batches(batch_size, train.seed, 0))
    per_epoch = max(1, math.ceil(batches / train.gradient_accumulation_steps))
    total = train.max_train_steps or per_epoch * train.epochs
    return RunPlan(batch_size, per_epoch, total, train.gradient_accumulation_steps)


def cast_frozen(model: TrainableModel, acc: Accelerator) -> None:
    """The frozen base in the compute dtype saves memory; LoRA weights are added later in fp32.

    A family with `place(device)` (models/sd.py) is cast where it was loaded and told the device: its
    prepare_inputs brings each module there only for the phase that needs it, so the VAE encodes with
    nothing else on the device (kohya's low-memory order). Other families go to the device here."""
    dtype = DTYPES.get(acc.mixed_precision)
    place = getattr(model, "place", None)
    for module in model.frozen_modules():
        if place is None:
            module.to(acc.device)
        if dtype is not None:
            module.to(dtype=dtype)
        module.requires_grad_(False)
    if place is not None:
        place(acc.device)


def inject_adapters(model: TrainableModel, net: NetworkConfig, trained: list[str]) -> None:
    """LoRA layers on the family's targets, or exactly the layers of `init_lora` (its ranks and weights)."""
    modules = model.adapter_modules()
    loaded: set[str] = set()
    if net.init_lora:
        parts = apply_init_lora(net, modules, model.info.name, model.info.adapter_format)
        loaded = {component for component, weights in parts.items() if weights}
    for component in trained:
        if component not in loaded and not (net.init_lora and component == trained[0]):
            inject_network(modules[component], model.lora_targets(component, net), net)
    for component, module in modules.items():  # e.g. init_lora's TE part: kept and saved, not trained
        for p in lora_parameters(module):
            p.requires_grad_(component in trained)


def param_groups(model: TrainableModel, trained: list[str], train: TrainConfig) -> list[dict]:
    """One group per component and learning rate: the component's rate times the UNet block's weight
    (down/mid/up_lr_weight) times loraplus_lr_ratio for LoRA's B (up) matrices. The main component's
    unscaled group comes first (its rate is the one logged)."""
    modules = model.adapter_modules()
    blocks = _block_weights(model, train)
    groups = []
    for i, component in enumerate(trained):
        lr = train.learning_rate if i == 0 else train.te_lr
        by_factor: dict[float, list] = {1.0: []}
        for name, param in _named_lora_parameters(modules[component]):
            factor = blocks(name) if i == 0 else 1.0
            if train.loraplus_lr_ratio and ".lora_B." in name:
                factor *= train.loraplus_lr_ratio
            by_factor.setdefault(factor, []).append(param)
        groups += [{"params": ps, "lr": lr * f} for f, ps in by_factor.items() if ps]
    if train.loraplus_lr_ratio and not any(
        ".lora_B." in n for m in modules.values() for n, _ in m.named_parameters()
    ):
        log.warning("loraplus_lr_ratio has no effect: this network has no LoRA B matrices")
    return groups


def _named_lora_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    wanted = {id(p) for p in lora_parameters(module)}
    return [(n, p) for n, p in module.named_parameters() if id(p) in wanted]


def _block_weights(model: TrainableModel, train: TrainConfig):
    """parameter name -> its block's learning-rate multiplier (1 when no block weights are set)."""
    if train.down_lr_weight is None and train.mid_lr_weight is None and train.up_lr_weight is None:
        return lambda name: 1.0
    block_of = getattr(model, "lr_block", None)
    if block_of is None or model.info.lr_blocks is None:
        raise ConfigError(
            f"down_lr_weight, mid_lr_weight and up_lr_weight are per-block learning rates of the SD and SDXL "
            f"UNet, and {model.info.display_name} models have no such blocks",
            "Remove them from the config",
        )
    lists = _block_lists(model, train)

    def weight(name: str) -> float:
        block = block_of(name)
        if block is None:
            return 1.0
        kind, index = block
        weights = lists[kind]
        if weights is None:
            return 1.0
        return weights[index] if isinstance(weights, list) else weights  # one mid number: all mid blocks

    return weight


def _block_lists(model: TrainableModel, train: TrainConfig) -> dict[str, list[float] | float | None]:
    """down/mid/up weights in the family's numbering (info.lr_blocks: SD 12/1, SDXL 9/3), presets spread over
    its blocks; a list of another length is refused."""
    per_side, mid = model.info.lr_blocks
    unet = f"the {model.info.display_name} UNet"
    lists: dict[str, list[float] | float | None] = {"mid": train.mid_lr_weight}
    for kind in ("down", "up"):
        key = f"{kind}_lr_weight"
        lists[kind] = values = side_weights(getattr(train, key), per_side)
        if values is not None and len(values) != per_side:
            raise ConfigError(
                f"{key} has {len(values)} multipliers, but {unet} has {per_side} blocks a side in kohya's "
                "numbering",
                f"Give {per_side} numbers, or a preset such as sine",
            )
    if isinstance(train.mid_lr_weight, list) and len(train.mid_lr_weight) != mid:
        raise ConfigError(
            f"mid_lr_weight has {len(train.mid_lr_weight)} multipliers, but {unet} has {mid} mid block(s)",
            "Give one number" + (f" or {mid}" if mid > 1 else ""),
        )
    return lists


def network_facts(modules: dict[str, nn.Module]) -> NetworkFacts | None:
    """The rank/alpha most layers have (kohya's ss_network_dim/alpha), conv 3x3 layers separately."""
    linear, conv = rank_counts(w for module in modules.values() for w in read_weights(module).values())
    if not linear and not conv:
        return None
    dim, alpha = (linear or conv).most_common(1)[0][0]
    conv_dim, conv_alpha = conv.most_common(1)[0][0] if conv else (None, None)
    return NetworkFacts(dim=dim, alpha=alpha, conv_dim=conv_dim, conv_alpha=conv_alpha)
