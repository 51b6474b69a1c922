"""A training folder with planted defects, drawn with Pillow on the fly."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

LONG = ", ".join(f"detail number {i} of the glowing device" for i in range(12))


def clean_image(seed: int, size: tuple[int, int] = (96, 96)) -> Image.Image:
    """A plain backdrop with a few shapes: low clutter, a perceptual hash of its own."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, (235, 235, 240))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        w, h = rng.randrange(10, size[0] // 2), rng.randrange(10, size[1] // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + w, y + h], fill=colour)
    return img


def noise_image(size: tuple[int, int] = (96, 96)) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture
def painter():
    """(clean_image, noise_image) for tests that need single pictures."""
    return clean_image, noise_image


@pytest.fixture
def defect_folder(tmp_path) -> Path:
    """Images 00-05 fine, plus: a duplicate, a resized near-duplicate, a tiny, a wide, a truncated JPEG,
    an empty file, a noisy one; captions with one missing, one orphan row, long/empty/shared captions."""
    root = tmp_path / "data"
    root.mkdir()
    for i in range(6):
        clean_image(i).save(root / f"img_{i:02d}.png")
    shutil.copy(root / "img_00.png", root / "dup_of_00.png")
    Image.open(root / "img_01.png").resize((80, 80), Image.Resampling.LANCZOS).save(root / "near_01.jpg")
    clean_image(20, (24, 24)).save(root / "tiny.png")
    clean_image(21, (300, 64)).save(root / "wide.png")
    clean_image(22).save(root / "full.jpg", quality=90)
    (root / "truncated.jpg").write_bytes((root / "full.jpg").read_bytes()[:300])
    (root / "full.jpg").unlink()
    (root / "empty.png").write_bytes(b"")
    noise_image().save(root / "noisy.png")
    rows = [
        ("img_00.png", "tchphn, neon phone"),
        ("img_01.png", "tchphn, neon laptop"),
        ("img_02.png", f"tchphn, {LONG}"),
        ("img_03.png", ""),
        ("img_04.png", "neon style"),
        ("img_05.png", "neon style"),
        ("dup_of_00.png", "tchphn, neon phone"),
        ("near_01.jpg", "tchphn, laptop"),
        ("tiny.png", "tchphn, tiny"),
        ("wide.png", "tchphn, wide"),
        ("noisy.png", "tchphn, noise"),
        ("ghost.png", "tchphn, an image that is not there"),
    ]  # truncated.jpg and empty.png have no row
    lines = ["filename,prompt"] + [f'{name},"{prompt}"' for name, prompt in rows]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def clean_folder(tmp_path) -> Path:
    root = tmp_path / "clean"
    root.mkdir()
    for i in range(4):
        clean_image(i, (80, 96)).save(root / f"ok_{i}.png")
        (root / f"ok_{i}.txt").write_text(f"tchphn, neon device number {i}\n", encoding="utf-8")
    return root
