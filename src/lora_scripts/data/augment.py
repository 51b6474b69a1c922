"""Random image augmentation per training step: mirror (flip_aug), a small colour change (color_aug), where
the bucket crop sits (random_crop). The draws come from the trainer's own RNG, so a resumed run repeats them.

Hand-written on Pillow: each is a few lines, and a torchvision/albumentations pipeline would not draw from
that RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..config.data import DataConfig

HUE_SHIFT_DEGREES = 16.0  # kohya: up to 8 of OpenCV's 180 hue steps either way
GAMMA_RANGE = (0.95, 1.05)
COLOR_AUG_RATE = 0.33  # kohya: a third of the images get one of the two changes


@dataclass(frozen=True)
class Augment:
    """What happens to one image this step (the defaults change nothing)."""

    flip: bool = False
    hue_shift: float = 0.0  # degrees around the colour wheel
    gamma: float = 1.0  # on values in [0, 1]
    crop_at: tuple[float, float] = (0.5, 0.5)  # where the crop sits in the spare width, height (0 = left/top)


def draw_augment(data: DataConfig, rng: random.Random) -> Augment:
    """One image's augmentation. Draws nothing for options that are off, so turning one on leaves the
    others' draws as they were only when it comes later in this order: flip, colour, crop."""
    flip = data.flip_aug and rng.random() < 0.5
    hue, gamma = 0.0, 1.0
    if data.color_aug and rng.random() < COLOR_AUG_RATE:
        if rng.random() < 0.5:
            hue = rng.uniform(-HUE_SHIFT_DEGREES, HUE_SHIFT_DEGREES)
        else:
            gamma = rng.uniform(*GAMMA_RANGE)
    crop_at = (rng.random(), rng.random()) if data.random_crop else (0.5, 0.5)
    return Augment(flip, hue, gamma, crop_at)


def apply_color(img: Image.Image, aug: Augment) -> Image.Image:
    """The hue rotated by aug.hue_shift degrees (saturation and value kept), or the gamma curve applied."""
    if aug.hue_shift:
        h, s, v = img.convert("HSV").split()
        steps = round(aug.hue_shift / 360.0 * 256)  # Pillow's hue is 0..255 for 0..360 degrees
        h = Image.fromarray(((np.asarray(h, dtype=np.int16) + steps) % 256).astype(np.uint8))
        img = Image.merge("HSV", (h, s, v)).convert("RGB")
    if aug.gamma != 1.0:
        values = np.asarray(img, dtype=np.float32) / 255.0
        img = Image.fromarray(np.clip(np.rint(values**aug.gamma * 255.0), 0, 255).astype(np.uint8))
    return img
