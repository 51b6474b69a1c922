"""Aspect-ratio buckets: images are trained at a size close to their own shape instead of a square crop."""

from __future__ import annotations

import math

from PIL import Image

from ..config.data import DataConfig
from ..errors import ConfigError


def make_buckets(resolution: int, min_reso: int, max_reso: int, step: int) -> list[tuple[int, int]]:
    """Kohya-style (w, h) buckets: multiples of ``step`` in [min, max], area <= resolution², maximal."""
    if min_reso > max_reso:
        raise ConfigError(
            f"min_bucket_reso ({min_reso}) is larger than max_bucket_reso ({max_reso})",
            "Set min_bucket_reso below max_bucket_reso in the data section of your config",
        )
    max_area = resolution * resolution
    buckets = {(resolution, resolution)}
    width = math.ceil(min_reso / step) * step
    while width <= max_reso:
        height = min(max_reso, max_area // width // step * step)
        if height >= min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
        width += step
    return sorted(buckets, key=lambda b: (b[0] / b[1], b))


def buckets_for(cfg: DataConfig) -> list[tuple[int, int]]:
    """The buckets the data config asks for; a single square when bucketing is off."""
    if not cfg.enable_bucket:
        return [(cfg.resolution, cfg.resolution)]
    return make_buckets(cfg.resolution, cfg.min_bucket_reso, cfg.max_bucket_reso, cfg.bucket_reso_steps)


def assign_bucket(size: tuple[int, int], buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to ``size`` (ties: the larger bucket)."""
    ratio = math.log(size[0] / size[1])

    def distance(bucket: tuple[int, int]) -> tuple[float, int, tuple[int, int]]:
        return abs(math.log(bucket[0] / bucket[1]) - ratio), -bucket[0] * bucket[1], bucket

    return min(buckets, key=distance)


def resize_to_bucket(
    img: Image.Image, bucket: tuple[int, int], crop_at: tuple[float, float] = (0.5, 0.5)
) -> Image.Image:
    """Scale ``img`` to cover the bucket (LANCZOS), then crop to exactly the bucket size: centred, or at
    ``crop_at`` (fractions of the spare width and height: 0 keeps the left/top edge, 1 the right/bottom)."""
    target_w, target_h = bucket
    if img.size == (target_w, target_h):
        return img
    scale = max(target_w / img.width, target_h / img.height)
    new_w = max(target_w, round(img.width * scale))
    new_h = max(target_h, round(img.height * scale))
    resized = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left = min(new_w - target_w, int((new_w - target_w) * crop_at[0]))
    top = min(new_h - target_h, int((new_h - target_h) * crop_at[1]))
    return resized.crop((left, top, left + target_w, top + target_h))
