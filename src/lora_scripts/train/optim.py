"""Optimiser and learning-rate schedule from the `train` section. Each optimiser comes from its own library
(torch, bitsandbytes, transformers, lion-pytorch, prodigyopt); diffusers' get_scheduler does the schedules."""

from __future__ import annotations

import ast
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


def optimizer_args(cfg: TrainConfig) -> dict:
    """optimizer_args as keyword arguments: values read as Python literals (kohya's rule), else as text."""
    out = {}
    for item in cfg.optimizer_args:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def make_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = optimizer_class(cfg.optimizer)
    lr, decay = cfg.learning_rate, cfg.weight_decay
    kwargs: dict = {"lr": lr, "weight_decay": decay}
    if cfg.optimizer == "sgd":
        kwargs = {"lr": lr, "momentum": 0.9}
    elif cfg.optimizer == "adafactor":  # a fixed learning rate (kohya's LoRA recipe), not Adafactor's own
        kwargs.update(relative_step=False, scale_parameter=False)
    elif cfg.optimizer == "prodigy" and lr < 0.1:
        log.warning(
            "optimizer prodigy finds the step size itself and treats learning_rate as a multiplier: "
            "learning_rate %g will train very slowly; 1 is usual",
            lr,
        )
    kwargs.update(optimizer_args(cfg))
    if cfg.optimizer == "adafactor" and kwargs.get("relative_step"):
        kwargs["lr"] = None  # Adafactor's own schedule: it refuses a fixed rate alongside it
    try:
        return cls(groups, **kwargs)
    except (TypeError, ValueError) as exc:
        given = ", ".join(cfg.optimizer_args) or "its defaults"
        raise ConfigError(
            f"optimizer {cfg.optimizer} refused its settings ({given}): {exc}".rstrip("."),
            "Check the names and values in optimizer_args against the optimiser's documentation",
        ) from exc


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
