"""lora-scripts: train LoRA adapters from one YAML file."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lora-scripts")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0.0.0+source"
