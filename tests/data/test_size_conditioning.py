"""SDXL's size/crop facts come from the data: the image's own size, the crop its bucket made (also when
mirrored) and the bucket; the latent cache keeps them, and an entry written without them is encoded again."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lora_scripts.data import Augment, load_pixels, scan_dataset, size_conditioning
from lora_scripts.data.latent_cache import LatentCache


@pytest.fixture
def wide(tmp_path, data_config):
    """One 120x60 image with a different colour in every column, in a 64x64 square bucket: scaled to
    128x64 (64 / 60 = 1.0667, 120 * 1.0667 = 128), 64 spare columns."""
    root = tmp_path / "wide"
    root.mkdir()
    columns = np.stack([np.arange(120) * 2, 255 - np.arange(120) * 2, np.full(120, 90)], axis=-1)
    Image.fromarray(np.repeat(columns[None], 60, axis=0).astype(np.uint8)).save(root / "wide.png")
    return scan_dataset(data_config(root, resolution=64, enable_bucket=False)).items[0]


@pytest.mark.parametrize(
    ("aug", "facts"),
    [
        (Augment(), (60, 120, 0, 32, 64, 64)),  # centred: 64 spare columns, 32 each side
        (Augment(crop_at=(0.25, 0.5)), (60, 120, 0, 16, 64, 64)),
        (Augment(crop_at=(0.25, 0.5), flip=True), (60, 120, 0, 48, 64, 64)),  # 128 - 16 - 64 in the mirror
        (Augment(crop_at=(1.0, 0.0), flip=True), (60, 120, 0, 0, 64, 64)),
    ],
)
def test_the_facts_are_the_crop_the_pixels_show(wide, aug, facts):
    assert size_conditioning(wide, aug) == facts
    scaled = Image.open(wide.path).resize((128, 64), Image.Resampling.LANCZOS)
    if aug.flip:
        scaled = scaled.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    _, _, top, left, h, w = facts
    want = np.asarray(scaled, dtype=np.float32)[top : top + h, left : left + w] / 127.5 - 1.0
    got = load_pixels(wide, aug=aug).numpy().transpose(1, 2, 0)
    assert np.allclose(got, want, atol=1e-6)


def _encode(pixels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.avg_pool2d(pixels, 8)  # a stand-in VAE: the cache is under test


def test_the_latent_cache_keeps_the_facts_and_rebuilds_entries_without_them(wide, tmp_path, caplog):
    folder = tmp_path / "cache"
    cache = LatentCache(_encode, folder)
    cache.fill(_index(wide))
    latents, sizes = cache.get([wide])
    assert latents.shape == (1, 3, 8, 8) and sizes.tolist() == [[60, 120, 0, 32, 64, 64]]
    (file,) = folder.glob("*.safetensors")
    assert load_file(file)["size_conditioning"].tolist() == [60, 120, 0, 32, 64, 64]
    save_file({"latent": latents[0].contiguous()}, file)  # as versions before size facts wrote it
    with caplog.at_level(logging.WARNING, logger="lora_scripts"):
        again = LatentCache(_encode, folder)
        again.fill(_index(wide))
    assert any("predates size facts" in r.getMessage() for r in caplog.records)
    assert again.get([wide])[1].tolist() == [[60, 120, 0, 32, 64, 64]]
    assert load_file(file)["size_conditioning"].tolist() == [60, 120, 0, 32, 64, 64]


def _index(item):
    from lora_scripts.data import DatasetIndex

    return DatasetIndex([item], [], item.path.parent)
