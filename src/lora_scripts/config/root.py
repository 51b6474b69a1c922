"""The one typed config that flows down: a section per stage, read from a flat or sectioned YAML."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .data import DataConfig
from .model import ModelConfig
from .network import NetworkConfig
from .output import OutputConfig
from .sample import SampleConfig
from .train import TrainConfig

SECTIONS: dict[str, type[BaseModel]] = {
    "model": ModelConfig,
    "data": DataConfig,
    "network": NetworkConfig,
    "train": TrainConfig,
    "output": OutputConfig,
    "sample": SampleConfig,
}

# kohya sd-scripts names people paste from their old configs -> our key.
ALIASES: dict[str, str] = {
    "pretrained_model_name_or_path": "base_model",
    "network_dim": "lora_rank",
    "network_alpha": "lora_alpha",
    "train_batch_size": "batch_size",
    "max_train_epochs": "epochs",
    "unet_lr": "learning_rate",
    "lr_warmup": "lr_warmup_steps",
}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelConfig
    data: DataConfig
    network: NetworkConfig = NetworkConfig()
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()
    sample: SampleConfig = SampleConfig()


def key_to_section() -> dict[str, str]:
    """Every flat key -> the section that owns it."""
    return {name: sec for sec, cls in SECTIONS.items() for name in cls.model_fields}
