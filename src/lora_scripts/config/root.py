"""The one typed config that flows down: a section per stage, read from a flat or sectioned YAML."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from .data import DataConfig
from .llm import LLMConfig
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
    "llm": LLMConfig,
}

# kohya sd-scripts names people paste from their old configs -> our key, where only the name differs. Keys
# whose value or meaning needs reading too (network_module, network_args, cache_latents_to_disk, ...) are
# config/kohya.py's table; both are listed in docs/config.md.
ALIASES: dict[str, str] = {
    "pretrained_model_name_or_path": "base_model",
    "network_dim": "lora_rank",
    "network_alpha": "lora_alpha",
    "train_batch_size": "batch_size",
    "max_train_epochs": "epochs",  # 0 (the GUI's unset) is read by config/kohya.py
    "unet_lr": "learning_rate",  # 0 (UNet not trained) is refused by config/kohya.py
    "optimizer_type": "optimizer",
    "save_every_n_steps": "save_steps",
    "caption_extention": "caption_extension",  # kohya still reads its old misspelling
    "eval_steps": "validation_steps",  # the LLM trainers' (transformers, TRL) name
}


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: ModelConfig
    data: DataConfig | None = None  # the image route's data; exactly one of `data` and `llm` is set
    llm: LLMConfig | None = None  # the LLM route's data and adapter settings (config/route.py)
    network: NetworkConfig = NetworkConfig()
    train: TrainConfig = TrainConfig()
    output: OutputConfig = OutputConfig()
    sample: SampleConfig = SampleConfig()

    @model_validator(mode="after")
    def _one_route(self):
        if (self.data is None) == (self.llm is None):
            raise ValueError("a config sets either train_data_dir (images) or dataset (LLM chat data)")
        return self

    @property
    def route(self) -> str:
        return "llm" if self.llm is not None else "image"

    @property
    def data_section(self) -> DataConfig | LLMConfig:
        """The route's data settings, for the family's loss and the trainer (which knows no route)."""
        return self.llm if self.llm is not None else self.data


def key_to_section() -> dict[str, str]:
    """Every flat key -> the section that owns it."""
    return {name: sec for sec, cls in SECTIONS.items() for name in cls.model_fields}
