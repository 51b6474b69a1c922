"""Fixtures for the data tests: small real image files written with Pillow."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from lora_scripts.config.data import DataConfig


def write_image(path: Path, size: tuple[int, int] = (64, 64), mode: str = "RGB", color=None, **save) -> Path:
    """Write a solid image (mid-grey unless ``color``) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if color is None:
        color = {"RGB": (128, 128, 128), "RGBA": (128, 128, 128, 255), "CMYK": (0, 0, 0, 128)}.get(mode, 128)
    Image.new(mode, size, color).save(path, **save)
    return path


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture
def data_config():
    """Factory: a DataConfig for ``root`` with small buckets so tests stay fast."""

    def build(root: Path, **overrides) -> DataConfig:
        values = {
            "train_data_dir": root,
            "resolution": 128,
            "min_bucket_reso": 64,
            "max_bucket_reso": 256,
            "bucket_reso_steps": 32,
        }
        values.update(overrides)
        return DataConfig(**values)

    return build
