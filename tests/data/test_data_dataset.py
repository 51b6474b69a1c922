from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from lora_scripts.data import DatasetIndex, epoch_batches, load_pixels, scan_dataset
from lora_scripts.errors import DataError


@pytest.fixture
def dataset_dir(tmp_path, make_image):
    """10_tech phone/ (2 images, one wide) + loose images with sidecar, csv and no caption."""
    root = tmp_path / "train"
    make_image(root / "10_tech phone" / "wide.png", (200, 100))
    make_image(root / "10_tech phone" / "square.jpg", (100, 100))
    make_image(root / "loose.png", (80, 120))
    make_image(root / "bare.png", (64, 64))
    make_image(root / "side.webp", (64, 64))
    (root / "side.txt").write_text("from sidecar\n")
    (root / "10_tech phone" / "square.txt").write_text("sidecar loses to csv")
    return root


def _write_csv(root, text):
    (root / "metadata.csv").write_text(text, encoding="utf-8")


def test_scan_with_default_metadata_csv(dataset_dir, data_config):
    _write_csv(
        dataset_dir, 'filename,prompt\n10_tech phone/wide.png,neon, phone\nsquare.jpg,"a, b"\nloose.png,\n'
    )
    index = scan_dataset(data_config(dataset_dir, num_repeats=2))
    items = {item.path.relative_to(dataset_dir).as_posix(): item for item in index.items}
    assert items["10_tech phone/wide.png"].caption == "neon, phone"
    assert items["10_tech phone/square.jpg"].caption == "a, b"
    assert items["side.webp"].caption == "from sidecar"
    assert items["bare.png"].caption == ""
    assert items["loose.png"].caption == ""  # empty csv prompt and no sidecar
    assert sorted(p.name for p in index.missing_captions) == ["bare.png", "loose.png"]
    assert items["10_tech phone/wide.png"].repeats == 10
    assert items["bare.png"].repeats == 2
    assert items["10_tech phone/wide.png"].size == (200, 100)
    assert index.num_images == 5
    assert index.num_samples == 10 + 10 + 2 * 3
    assert sum(index.buckets.values()) == index.num_samples


def test_scan_sidecars_only_and_buckets(dataset_dir, data_config):
    index = scan_dataset(data_config(dataset_dir))
    items = {item.path.name: item for item in index.items}
    assert items["square.jpg"].caption == "sidecar loses to csv"
    w, h = items["wide.png"].bucket
    assert w > h and w * h <= 128 * 128 and w % 32 == 0 and h % 32 == 0
    tall_w, tall_h = items["loose.png"].bucket
    assert tall_h > tall_w
    assert items["bare.png"].bucket == (128, 128)


def test_scan_without_buckets_is_square(dataset_dir, data_config):
    index = scan_dataset(data_config(dataset_dir, enable_bucket=False))
    assert {item.bucket for item in index.items} == {(128, 128)}
    assert index.buckets == {(128, 128): 10 + 10 + 3}


def test_explicit_metadata_path(dataset_dir, data_config, tmp_path):
    _write_csv(dataset_dir, "filename,prompt\nbare.png,ignored\n")
    other = tmp_path / "labels.csv"
    other.write_text("file_name,caption\nbare.png,explicit\n")
    index = scan_dataset(data_config(dataset_dir, metadata_path=other))
    assert next(i for i in index.items if i.path.name == "bare.png").caption == "explicit"
    with pytest.raises(DataError, match="nope.csv.*does not exist"):
        scan_dataset(data_config(dataset_dir, metadata_path=tmp_path / "nope.csv"))


def test_csv_row_for_missing_file(dataset_dir, data_config):
    _write_csv(dataset_dir, "filename,prompt\nghost.png,boo\n")
    with pytest.raises(DataError, match=r"metadata\.csv.*ghost\.png.*does not exist"):
        scan_dataset(data_config(dataset_dir))


@pytest.mark.parametrize("row", ["../../etc/passwd", "/etc/passwd", "10_tech phone/../../outside.png"])
def test_csv_row_outside_training_folder(dataset_dir, data_config, row):
    (dataset_dir.parent / "outside.png").write_bytes(b"")
    _write_csv(dataset_dir, f"filename,prompt\n{row},x\n")
    with pytest.raises(DataError, match="outside the training folder"):
        scan_dataset(data_config(dataset_dir))


def test_csv_plain_name_ambiguous(dataset_dir, data_config, make_image):
    make_image(dataset_dir / "2_other" / "wide.png")
    _write_csv(dataset_dir, "filename,prompt\nwide.png,x\n")
    with pytest.raises(DataError, match="several images"):
        scan_dataset(data_config(dataset_dir))
    _write_csv(dataset_dir, "filename,prompt\n2_other/wide.png,x\n./10_tech phone/wide.png,y\n")
    index = scan_dataset(data_config(dataset_dir))
    captions = {i.path.relative_to(dataset_dir).as_posix(): i.caption for i in index.items}
    assert captions["2_other/wide.png"] == "x" and captions["10_tech phone/wide.png"] == "y"


def test_missing_or_empty_training_folder(tmp_path, data_config):
    with pytest.raises(DataError, match="'.*nowhere' does not exist.*train_data_dir"):
        scan_dataset(data_config(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("caption without image")
    with pytest.raises(DataError, match="No images"):
        scan_dataset(data_config(tmp_path / "empty"))


def test_undecodable_image_fails_scan_naming_file(dataset_dir, data_config):
    rng = np.random.default_rng(0)
    broken = dataset_dir / "broken.jpg"
    Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(broken, quality=95)
    broken.write_bytes(broken.read_bytes()[:3000])
    with pytest.raises(DataError, match="broken.jpg"):
        scan_dataset(data_config(dataset_dir))
    (dataset_dir / "zero.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"2 images.*broken\.jpg.*zero\.png"):
        scan_dataset(data_config(dataset_dir))


def test_summary_mentions_missing_captions(dataset_dir, data_config, make_image):
    for n in range(12):
        make_image(dataset_dir / "more" / f"m{n:02d}.png", (32, 32))
    text = scan_dataset(data_config(dataset_dir)).summary()
    assert "17 images, 3 captioned" in text
    assert "10_tech phone: 2 images x 10 repeats" in text
    assert "more: 12 images x 1 repeats" in text
    assert "128x128" in text
    assert "Images without a caption, training with an empty caption (14):" in text
    assert "bare.png" in text and "more/m06.png" in text and "and 4 more" in text
    assert "more/m08.png" not in text  # only the first 10 are listed
    assert "Images without a caption, training with their class" in text
    assert "10_tech phone/wide.png: 'tech phone'" in text


def test_images_without_a_caption_train_with_their_class_as_in_kohya(dataset_dir, data_config):
    """kohya's DreamBooth-style folders: an image with no caption at all trains with its subset's
    class_tokens, else the class name of its `N_name` folder; an image outside such a folder with none
    trains with an empty caption, and a written caption always wins."""
    (dataset_dir / "10_tech phone" / "blank.txt").write_text("")  # an empty caption file is a caption
    (dataset_dir / "10_tech phone" / "blank.png").write_bytes((dataset_dir / "bare.png").read_bytes())
    index = scan_dataset(data_config(dataset_dir))
    captions = {item.path.relative_to(dataset_dir).as_posix(): item.caption for item in index.items}
    assert captions["10_tech phone/wide.png"] == "tech phone"
    assert captions["10_tech phone/square.jpg"] == "sidecar loses to csv"
    assert captions["10_tech phone/blank.png"] == "" and captions["bare.png"] == ""
    assert [p.name for p in index.class_captioned] == ["wide.png"]
    given = scan_dataset(data_config(dataset_dir, class_tokens="sks gadget"))
    captions = {item.path.name: item.caption for item in given.items}
    assert captions["wide.png"] == captions["bare.png"] == captions["loose.png"] == "sks gadget"
    assert captions["side.webp"] == "from sidecar" and captions["blank.png"] == ""


def test_epoch_batches_deterministic_single_bucket_complete(dataset_dir, data_config):
    index = scan_dataset(data_config(dataset_dir))
    first = epoch_batches(index, 3, seed=7, epoch=0)
    assert first == epoch_batches(index, 3, seed=7, epoch=0)
    assert first != epoch_batches(index, 3, seed=7, epoch=1)
    for batch in first:
        assert 1 <= len(batch) <= 3
        assert len({item.bucket for item in batch}) == 1
    seen = Counter(item.path for batch in first for item in batch)
    assert seen == {item.path: item.repeats for item in index.items}
    per_bucket = Counter(item.bucket for batch in first for item in batch)
    assert dict(per_bucket) == index.buckets
    partial = Counter(batch[0].bucket for batch in first if len(batch) < 3)
    assert all(count <= 1 for count in partial.values())


def test_epoch_batches_rejects_bad_batch_size(dataset_dir, data_config):
    with pytest.raises(ValueError):
        epoch_batches(scan_dataset(data_config(dataset_dir)), 0, seed=0, epoch=0)


def test_load_pixels_range_shape_and_flip(tmp_path, data_config):
    root = tmp_path / "px"
    root.mkdir()
    img = Image.new("RGB", (200, 100), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 100, 100))  # left half white
    img.save(root / "half.png")
    index = scan_dataset(data_config(root))
    item = index.items[0]
    w, h = item.bucket
    pixels = load_pixels(item, flip=False)
    assert pixels.dtype == torch.float32 and pixels.shape == (3, h, w)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert pixels[:, :, 0].mean() > 0.9 and pixels[:, :, -1].mean() < -0.9
    flipped = load_pixels(item, flip=True)
    assert torch.equal(flipped, torch.flip(pixels, dims=[2]))


def test_dataset_index_empty_properties(tmp_path):
    index = DatasetIndex(items=[], missing_captions=[], root=tmp_path)
    assert index.num_images == 0 and index.num_samples == 0 and index.buckets == {}
    assert "0 images" in index.summary()
