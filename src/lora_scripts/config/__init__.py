"""Typed configuration: one pydantic model per section, one `Config` that flows down."""

from .data import DataConfig
from .llm import LLMConfig
from .load import build_config, load_config
from .model import ModelConfig
from .network import NetworkConfig
from .output import OutputConfig
from .root import Config
from .sample import SampleConfig
from .train import TrainConfig

__all__ = [
    "Config",
    "DataConfig",
    "LLMConfig",
    "ModelConfig",
    "NetworkConfig",
    "OutputConfig",
    "SampleConfig",
    "TrainConfig",
    "build_config",
    "load_config",
]
