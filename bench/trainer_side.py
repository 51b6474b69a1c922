"""The project's side: `run_training(cfg)` exactly as `lora-scripts train` runs it, timed from outside src/.

A few methods of `Trainer` are wrapped (not changed) to note the wall time at each optimiser-step boundary, at
each epoch end and around the latent / text-encoder cache fills, and to reset the peak-memory mark when the
loop starts.
"""

from __future__ import annotations

import time
from pathlib import Path

from lora_scripts.config import build_config
from lora_scripts.train import latents, loop, text_cache
from lora_scripts.train.run import run_training

from .common import reset_peak, rss_mb


def trainer_config(spec: dict) -> dict:
    data = Path(spec["data"])
    raw = {
        "base_model": spec["model"],
        "train_data_dir": str(data),
        "metadata_path": str(data / "metadata.csv"),
        "output_dir": spec["out"],
        "output_name": "bench",
        "resolution": spec["resolution"],
        "enable_bucket": False,
        "lora_rank": spec["rank"],
        "lora_alpha": spec["rank"],
        "batch_size": spec["batch_size"],
        "learning_rate": spec["lr"],
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "max_grad_norm": 1.0,
        "mixed_precision": "no",
        "device": spec["device"],
        "seed": spec["seed"],
        "cache_latents": spec.get("cache_latents", "no"),
        "cache_text_encoder_outputs": spec.get("cache_te", False),
        "doctor": "warn",
        "overwrite": True,
    }
    if spec.get("epochs"):
        raw["epochs"] = spec["epochs"]
    else:
        raw["max_train_steps"] = spec["steps"]
    return raw


def train_project(spec: dict) -> dict:
    marks: dict = {"steps": [], "epochs": [], "cache": {}}
    Trainer = loop.Trainer
    original = {
        "train": Trainer.train,
        "_after_step": Trainer._after_step,
        "_after_epoch": Trainer._after_epoch,
    }

    def train(self):
        marks["rss_before_train_mb"] = rss_mb("VmRSS")
        marks["trainable_params"] = sum(p.numel() for p in self.trainable)
        reset_peak()
        marks["start"] = time.perf_counter()
        return original["train"](self)

    def after_step(self, *args, **kwargs):  # signature-agnostic: only marks the step boundary
        marks["steps"].append(time.perf_counter())
        return original["_after_step"](self, *args, **kwargs)

    def after_epoch(self, pos):
        marks["epochs"].append(time.perf_counter())
        return original["_after_epoch"](self, pos)

    Trainer.train, Trainer._after_step, Trainer._after_epoch = train, after_step, after_epoch
    _time_fill(latents.LatentCache, "latents", marks)
    _time_fill(text_cache.TextCache, "text", marks)
    result = run_training(build_config(trainer_config(spec), source="bench"))
    stamps = [marks["start"], *marks["steps"]]
    epochs = [marks["start"], *marks["epochs"]]
    return {
        "step_seconds": [b - a for a, b in zip(stamps, stamps[1:], strict=False)],
        "epoch_seconds": [b - a for a, b in zip(epochs, epochs[1:], strict=False)],
        "cache_fill_seconds": marks["cache"],
        "losses": result.losses,
        "train_peak_mb": rss_mb("VmHWM"),
        "rss_before_train_mb": marks["rss_before_train_mb"],
        "trainable_params": marks["trainable_params"],
    }


def _time_fill(cls, name: str, marks: dict) -> None:
    fill = cls.fill

    def timed(self, *args, **kwargs):
        started = time.perf_counter()
        out = fill(self, *args, **kwargs)
        marks["cache"][name] = time.perf_counter() - started
        return out

    cls.fill = timed
