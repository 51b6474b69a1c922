"""Big JPEGs are decoded at a reduced DCT scale when the bucket is much smaller: same picture, less work."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lora_scripts.data import open_image, resize_to_bucket


def _photo(path, size=(3000, 2000)):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = np.stack([x / size[0] * 255, y / size[1] * 255, (x + y) / sum(size) * 255], axis=-1)
    noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(path, quality=92)
    return path


def test_draft_decode_gives_the_same_training_image(tmp_path):
    photo = _photo(tmp_path / "photo.jpg")
    bucket = (320, 512)
    full = np.asarray(resize_to_bucket(open_image(photo), bucket), dtype=np.float32)
    draft_img = open_image(photo, at_least=max(bucket))
    assert min(draft_img.size) >= max(bucket) and draft_img.size[0] < 3000  # decoded smaller, still covering
    draft = np.asarray(resize_to_bucket(draft_img, bucket), dtype=np.float32)
    assert draft.shape == full.shape == (512, 320, 3)
    assert np.abs(draft - full).mean() < 2.0  # of 255: the same picture


def test_png_and_small_jpeg_are_decoded_whole(tmp_path):
    png = tmp_path / "a.png"
    Image.new("RGB", (900, 600), (10, 200, 30)).save(png)
    assert open_image(png, at_least=128).size == (900, 600)
    small = _photo(tmp_path / "small.jpg", (400, 300))
    assert open_image(small, at_least=512).size == (400, 300)
