"""The project's side: `run_training(cfg)` exactly as `lora-scripts train` runs it (its public entry).

Nothing of the trainer is wrapped: step times come from the optimiser-step hook in bench/clock.py, the same
one the bare loop is timed with. A spec with `config_file` trains that YAML's settings (bench/sdxl_8gb.py:
configs/sdxl_8gb.yaml) with the spec's model, data, output and step count in place of the file's.
"""

from __future__ import annotations

from pathlib import Path

import yaml

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
        "lora_alpha": spec.get("alpha", spec["rank"]),
        "batch_size": spec["batch_size"],
        "learning_rate": spec["lr"],
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "max_grad_norm": 1.0,
        "mixed_precision": spec.get("mixed_precision", "no"),
        "gradient_checkpointing": spec.get("gradient_checkpointing", False),
        "device": spec["device"],
        "seed": spec["seed"],
        "cache_latents": spec.get("cache_latents", "no"),
        "cache_text_encoder_outputs": spec.get("cache_te", False),
        "doctor": spec.get("doctor", "warn"),
        "overwrite": True,
        "max_train_steps": total_steps,
    }
    return raw


# what a spec replaces in a config file: where things are and how long it runs (samples and checkpoint
# states off: they are not training steps)
FILE_OVERRIDES = (
    "base_model",
    "train_data_dir",
    "metadata_path",
    "output_dir",
    "output_name",
    "overwrite",
    "max_train_steps",
    "device",
    "seed",
    "doctor",
)
FILE_DROPS = ("sample_prompts", "sample_every_n_steps", "sample_every_n_epochs", "save_steps", "resume")


def file_config(spec: dict, total_steps: int) -> dict:
    raw = yaml.safe_load(Path(spec["config_file"]).read_text(encoding="utf-8"))
    ours = trainer_config(spec, total_steps)
    raw = {k: v for k, v in raw.items() if k not in FILE_DROPS}
    raw.update({k: ours[k] for k in FILE_OVERRIDES})
    raw.update(spec.get("config_overrides", {}))
    return raw


def train_project(spec: dict, total_steps: int) -> dict:
    raw = file_config(spec, total_steps) if spec.get("config_file") else trainer_config(spec, total_steps)
    result = run_training(build_config(raw, source="bench"))
    return {"losses": result.losses}
