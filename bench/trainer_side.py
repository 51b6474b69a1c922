"""The project's side: `run_training(cfg)` exactly as `lora-scripts train` runs it (its public entry).

Nothing of the trainer is wrapped: step times come from the optimiser-step hook in bench/clock.py, the same
one the bare loop is timed with.
"""

from __future__ import annotations

from pathlib import Path

from lora_scripts.config import build_config
from lora_scripts.train.run import run_training


def trainer_config(spec: dict, total_steps: int) -> dict:
    data = Path(spec["data"])
    raw = {
        "base_model": spec["model"],
        "train_data_dir": str(data),
        "metadata_path": str(data / "metadata.csv"),
        "output_dir": spec["out"],
        "output_name": "bench",
        "resolution": spec["resolution"],
        "enable_bucket": False,  # one square bucket, like the bare loop's centre crop
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
        "max_train_steps": total_steps,
    }
    return raw


def train_project(spec: dict, total_steps: int) -> dict:
    result = run_training(build_config(trainer_config(spec, total_steps), source="bench"))
    return {"losses": result.losses}
