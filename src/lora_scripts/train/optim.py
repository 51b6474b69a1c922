"""Optimiser and learning-rate schedule from the `train` section. Each optimiser comes from its own library
(torch, bitsandbytes, transformers, lion-pytorch, prodigyopt); diffusers' get_scheduler does the schedules."""

from __future__ import annotations

import importlib
import logging

import torch
from diffusers.optimization import get_scheduler

from ..config import TrainConfig
from ..config.train import OPTIMIZER_LIBRARIES
from ..errors import ConfigError

log = logging.getLogger(__name__)


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The optimiser class for `name`, or a ConfigError naming the pip command when its library is missing."""
    if name == "adamw":
        return torch.optim.AdamW
    if name == "sgd":
        return torch.optim.SGD
    module, cls, package = OPTIMIZER_LIBRARIES[name]
    try:
        return getattr(importlib.import_module(module), cls)
    except Exception as exc:  # ImportError, or a library that fails to load (e.g. no usable CUDA build)
        raise ConfigError(
            f"optimizer: {name} needs the {package} package, which cannot be loaded here ({exc})".rstrip(),
            f"Install it with: pip install {package} (or pick optimizer: adamw)",
        ) from exc


def make_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = optimizer_class(cfg.optimizer)
    lr, decay = cfg.learning_rate, cfg.weight_decay
    if cfg.optimizer == "sgd":
        return cls(groups, lr=lr, momentum=0.9)
    if cfg.optimizer == "adafactor":  # a fixed learning rate (kohya's LoRA recipe), not Adafactor's own
        return cls(groups, lr=lr, weight_decay=decay, relative_step=False, scale_parameter=False)
    if cfg.optimizer == "prodigy" and lr < 0.1:
        log.warning(
            "optimizer prodigy finds the step size itself and treats learning_rate as a multiplier: "
            "learning_rate %g will train very slowly; 1 is usual",
            lr,
        )
    return cls(groups, lr=lr, weight_decay=decay)


def make_lr_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    extra = {}
    if cfg.lr_scheduler == "cosine_with_restarts":
        extra["num_cycles"] = cfg.lr_scheduler_num_cycles
    elif cfg.lr_scheduler == "polynomial":
        extra["power"] = cfg.lr_scheduler_power
    return get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=total_steps,
        **extra,
    )
