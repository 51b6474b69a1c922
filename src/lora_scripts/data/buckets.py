"""Aspect-ratio buckets: images are trained at a size close to their own shape instead of a square crop."""

from __future__ import annotations

import math
from dataclasses import dataclass

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


def bucket_for(size: tuple[int, int], buckets: list[tuple[int, int]], cfg: DataConfig) -> tuple[int, int]:
    """The bucket of an image of `size` (w, h): the closest in aspect ratio among `buckets` (what
    `buckets_for` made). With bucket_no_upscale, kohya's BucketManager.select_bucket: an image whose area is
    at most resolution² keeps its own size, a larger one is first scaled down to resolution² keeping its
    shape (`_shrunk`); each side is then rounded down to bucket_reso_steps (at least one step), so
    `bucket_crop` only trims the image to its bucket and never enlarges it. min/max_bucket_reso do not
    apply there, as in kohya."""
    if not (cfg.enable_bucket and cfg.bucket_no_upscale):
        return assign_bucket(size, buckets)
    step = cfg.bucket_reso_steps
    width, height = _shrunk(size, cfg.resolution**2, step) if size[0] * size[1] > cfg.resolution**2 else size
    return max(step, width - width % step), max(step, height - height % step)


def _shrunk(size: tuple[int, int], max_area: int, step: int) -> tuple[int, int]:
    """kohya's size for an image over `max_area` under bucket_no_upscale: scaled to that area, then the
    width or the height put on a multiple of `step` (kohya's round_to_steps: rounded, then floored to the
    step), whichever keeps the aspect ratio closer; the other side follows the ratio."""
    ratio = size[0] / size[1]
    width = math.sqrt(max_area * ratio)
    height = max_area / width

    def on_step(x: float) -> int:  # at least one step: kohya divides by zero for a side under one step
        x = int(x + 0.5)
        return max(step, x - x % step)

    by_width, by_height = on_step(width), on_step(height)
    width_error = abs(by_width / on_step(by_width / ratio) - ratio)
    height_error = abs(on_step(by_height * ratio) / by_height - ratio)
    if width_error < height_error:
        return by_width, int(by_width / ratio + 0.5)
    return int(by_height * ratio + 0.5), by_height


@dataclass(frozen=True)
class Crop:
    """How an image meets its bucket: scaled to `resized` (w, h) so it covers the bucket, then cut at
    (`left`, `top`) of the scaled image (SDXL's crop conditioning reads these)."""

    resized: tuple[int, int]
    left: int
    top: int


def bucket_crop(
    size: tuple[int, int], bucket: tuple[int, int], crop_at: tuple[float, float] = (0.5, 0.5)
) -> Crop:
    """The crop of an image of `size` (w, h) into `bucket`: centred, or at `crop_at` (fractions of the
    spare width and height: 0 keeps the left/top edge, 1 the right/bottom)."""
    target_w, target_h = bucket
    if tuple(size) == tuple(bucket):
        return Crop(bucket, 0, 0)
    scale = max(target_w / size[0], target_h / size[1])
    new_w = max(target_w, round(size[0] * scale))
    new_h = max(target_h, round(size[1] * scale))
    left = min(new_w - target_w, int((new_w - target_w) * crop_at[0]))
    top = min(new_h - target_h, int((new_h - target_h) * crop_at[1]))
    return Crop((new_w, new_h), left, top)


def resize_to_bucket(
    img: Image.Image,
    bucket: tuple[int, int],
    crop_at: tuple[float, float] = (0.5, 0.5),
    crop: Crop | None = None,
) -> Image.Image:
    """Scale ``img`` to cover the bucket (LANCZOS), then crop to exactly the bucket size, as `crop` says
    (by default `bucket_crop` of the image's own size at ``crop_at``)."""
    crop = crop or bucket_crop(img.size, bucket, crop_at)
    if img.size != crop.resized:
        img = img.resize(crop.resized, Image.Resampling.LANCZOS)
    if img.size == tuple(bucket):
        return img
    return img.crop((crop.left, crop.top, crop.left + bucket[0], crop.top + bucket[1]))
