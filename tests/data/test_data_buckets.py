from __future__ import annotations

import pytest
from PIL import Image

from lora_scripts.data import assign_bucket, buckets_for, make_buckets, resize_to_bucket
from lora_scripts.errors import ConfigError


def test_buckets_within_area_and_step():
    buckets = make_buckets(512, 256, 1024, 64)
    assert (512, 512) in buckets
    assert len(buckets) == len(set(buckets))
    for w, h in buckets:
        assert w * h <= 512 * 512
        assert w % 64 == 0 and h % 64 == 0
        assert 256 <= w <= 1024 and 256 <= h <= 1024
    assert (1024, 256) in buckets and (256, 1024) in buckets


def _fits(w, h):
    return w <= 1024 and h <= 1024 and w * h <= 512 * 512


def test_buckets_are_maximal_and_symmetric():
    buckets = make_buckets(512, 256, 1024, 64)
    for w, h in buckets:
        assert (h, w) in buckets
        # kohya: each width gets its largest height, plus the transposed bucket
        assert not _fits(w, h + 64) or not _fits(w + 64, h), (w, h)
    widths = {w for w, _ in buckets}
    for w in widths:
        tallest = max(h for bw, h in buckets if bw == w)
        assert not _fits(w, tallest + 64), (w, tallest)


def test_wide_image_gets_wide_bucket():
    buckets = make_buckets(512, 256, 1024, 64)
    w, h = assign_bucket((2000, 1000), buckets)
    assert w > h
    assert 1.7 <= w / h <= 2.3
    assert assign_bucket((300, 300), buckets) == (512, 512)
    tw, th = assign_bucket((1000, 2000), buckets)
    assert th > tw


def test_disabled_bucketing_gives_square(data_config, tmp_path):
    cfg = data_config(tmp_path, enable_bucket=False, resolution=512)
    assert buckets_for(cfg) == [(512, 512)]
    assert assign_bucket((2000, 1000), buckets_for(cfg)) == (512, 512)


def test_min_larger_than_max_is_config_error():
    with pytest.raises(ConfigError, match="min_bucket_reso"):
        make_buckets(512, 1024, 256, 64)


@pytest.mark.parametrize(
    ("src", "bucket"), [((300, 200), (128, 64)), ((50, 90), (96, 64)), ((64, 64), (64, 64))]
)
def test_resize_to_bucket_exact_size(src, bucket):
    img = Image.new("RGB", src, (1, 2, 3))
    out = resize_to_bucket(img, bucket)
    assert out.size == bucket
    assert out.getpixel((0, 0)) == (1, 2, 3)


def test_resize_to_bucket_centre_crops():
    img = Image.new("RGB", (300, 100), (0, 0, 0))
    img.paste((255, 255, 255), (100, 0, 200, 100))  # white middle third
    out = resize_to_bucket(img, (64, 64))
    assert out.getpixel((32, 32)) == (255, 255, 255)
    assert out.getpixel((2, 32))[0] > 200 and out.getpixel((61, 32))[0] > 200


def test_bucket_no_upscale_keeps_a_small_image_at_its_own_size(data_config, make_image, tmp_path):
    """kohya's bucket_no_upscale (BucketManager.select_bucket): an image within resolution² gets a bucket of
    its own size rounded down to the step, and its pixels are never enlarged; a larger one is first scaled
    to resolution² keeping its shape. Expected buckets worked out by hand from kohya's code."""
    from lora_scripts.data import bucket_crop, load_pixels, scan_dataset

    small = make_image(tmp_path / "img" / "small.png", (100, 70))  # area 7000 <= 128²
    large = make_image(tmp_path / "img" / "large.png", (600, 300))
    wide = make_image(tmp_path / "img" / "wide.png", (1000, 700))
    plain = {i.path: i for i in scan_dataset(data_config(tmp_path / "img")).items}
    kept = {i.path: i for i in scan_dataset(data_config(tmp_path / "img", bucket_no_upscale=True)).items}
    w, h = kept[small].bucket
    assert (w, h) == (96, 64) and w % 32 == 0 and h % 32 == 0  # bucket_reso_steps 32
    assert w <= 100 and h <= 70 and abs(w / h - 100 / 70) < 0.1  # within the image, its shape kept
    assert plain[small].bucket[0] * plain[small].bucket[1] > 100 * 70  # without it: scaled up to 128² area
    crop = bucket_crop(kept[small].size, kept[small].bucket)
    assert crop.resized[0] <= 100 and crop.resized[1] <= 70  # the pixels are only made smaller, never larger
    assert tuple(load_pixels(kept[small]).shape) == (3, 64, 96)
    # 600x300 scaled to 128² keeping 2:1 is 181.0x90.5; kohya puts the height on the step (64, ratio error
    # 0 against 0.5 for the width's 160x64) and the width follows: 128x64
    assert kept[large].bucket == (128, 64) and plain[large].bucket == (160, 96)
    # 1000x700 -> 153.0x107.1; width on the step: 128x64 (ratio 2.0); height: 96 and 137 (ratio 1.43,
    # closer to 1.43): resized to 137x96, bucket 128x96, which the image covers
    assert kept[wide].bucket == (128, 96)
    assert bucket_crop(kept[wide].size, kept[wide].bucket).resized == (137, 96)
    off = scan_dataset(data_config(tmp_path / "img", bucket_no_upscale=True, enable_bucket=False)).items
    assert {i.bucket for i in off} == {(128, 128)}  # kohya: no buckets, no effect
