"""The training set: which images, with which caption, how often, at which bucket size."""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config.data import DataConfig
from ..errors import DataError
from .augment import Augment, apply_color
from .buckets import bucket_crop, bucket_for, buckets_for, resize_to_bucket
from .captions import (
    class_caption,
    class_folder,
    metadata_folder_error,
    repeats_folder_warning,
    split_tags,
    subset_folder,
    switched_off_names,
)
from .images import image_size, list_images, open_image, switched_off_error, training_images
from .matching import csv_captions, image_caption
from .textfile import EncodingNotes

log = logging.getLogger(__name__)

_LISTED = 10


@dataclass(frozen=True)
class ImageItem:
    path: Path
    caption: str
    repeats: int
    size: tuple[int, int]
    bucket: tuple[int, int]
    loss_weight: float = 1.0  # prior_loss_weight for regularisation images


@dataclass
class DatasetIndex:
    items: list[ImageItem]
    missing_captions: list[Path]
    root: Path
    # images without any caption that train with class_tokens or their `N_name` folder's class (kohya)
    class_captioned: list[Path] = field(default_factory=list)
    # regularisation images (reg_data_dir): mixed into every epoch as often as training samples (kohya)
    reg_items: list[ImageItem] = field(default_factory=list)
    reg_root: Path | None = None
    ID_NAME = "training images"  # how data_id() is named in a state's fingerprint

    @property
    def num_images(self) -> int:
        return len(self.items)

    @property
    def num_samples(self) -> int:
        """Samples per epoch: every image counted once per repeat."""
        return sum(item.repeats for item in self.items)

    @property
    def buckets(self) -> dict[tuple[int, int], int]:
        """Bucket (w, h) -> samples per epoch in it (repeats included)."""
        counts: Counter[tuple[int, int]] = Counter()
        for item in self.items:
            counts[item.bucket] += item.repeats
        return dict(sorted(counts.items()))

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[list[ImageItem]]:
        return epoch_batches(self, batch_size, seed, epoch)

    def largest(self) -> tuple[list[ImageItem], str]:
        """The items of the biggest bucket, and its size in words (`batch_size: auto` probes with them)."""
        w, h = max(self.buckets, key=lambda b: b[0] * b[1])
        return [i for i in self.items if i.bucket == (w, h)], f"{w}x{h}"

    def facts(self) -> dict:
        """What the trainer records of the data (kohya's ss_num_images, ss_dataset_dirs, ss_tag_frequency,
        buckets, and the same of the regularisation images). As kohya, one entry per subset, named by its
        folder: each `N_name` folder (`10_neon phone`), and the training folder's own name for the images
        outside any."""
        dirs, tags = _subsets(self.items, self.root)
        reg_dirs = _subsets(self.reg_items, self.reg_root)[0] if self.reg_root else {}
        return {
            "num_images": self.num_images,
            "num_samples": self.num_samples,
            "dataset_dirs": dirs,
            "tag_frequency": tags,
            "reg_dataset_dirs": reg_dirs,
            "num_reg_samples": sum(item.repeats for item in self.reg_items),
            "buckets": {f"{w}x{h}": n for (w, h), n in self.buckets.items()},
        }

    def data_id(self) -> str:
        """Every image (name, size, first 64 KB), its caption and repeats: a new, edited or re-captioned
        image changes it; moving the folder does not (train/fingerprint.py)."""
        digest = hashlib.sha1()
        for item in sorted(self.items, key=lambda i: str(i.path.relative_to(self.root))):
            digest.update(str(item.path.relative_to(self.root)).encode())
            digest.update(f"|{item.caption}|{item.repeats}|{item.path.stat().st_size}|".encode())
            with open(item.path, "rb") as handle:
                digest.update(handle.read(65536))
        if self.reg_items:  # only then: states of runs without them keep their fingerprint
            for item in sorted(self.reg_items, key=lambda i: str(i.path)):
                digest.update(
                    f"reg|{item.path.relative_to(self.reg_root)}|{item.caption}|{item.repeats}|".encode()
                )
                digest.update(f"{item.loss_weight}|{item.path.stat().st_size}|".encode())
            return (
                f"{self.num_images} images + {len(self.reg_items)} regularisation, {digest.hexdigest()[:12]}"
            )
        return f"{self.num_images} images, {digest.hexdigest()[:12]}"

    def summary(self) -> str:
        """A few lines for people: counts, repeats per folder, buckets, images without a caption."""
        captioned = self.num_images - len(self.missing_captions)
        lines = [
            f"Dataset '{self.root}': {self.num_images} images, {captioned} captioned, "
            f"{self.num_samples} samples per epoch",
            "Repeats per folder:",
            *self._folder_lines(),
            "Buckets (width x height: samples per epoch):",
            *(f"  {w}x{h}: {n}" for (w, h), n in self.buckets.items()),
        ]
        if self.reg_items:
            weight = self.reg_items[0].loss_weight
            lines.append(
                f"Regularisation images '{self.reg_root}': {len(self.reg_items)}, mixed in as often as "
                f"training samples ({self.num_samples} per epoch), loss weight {weight:g}"
            )
        return "\n".join(lines + self._missing_lines())

    def _folder_lines(self) -> list[str]:
        folders: dict[str, list[ImageItem]] = {}
        for item in self.items:
            folder = item.path.parent.relative_to(self.root).as_posix()
            folder = "(top folder)" if folder == "." else folder
            folders.setdefault(folder, []).append(item)
        return [
            f"  {folder}: {len(items)} images x {items[0].repeats} repeats"
            for folder, items in sorted(folders.items())
        ]

    def _missing_lines(self) -> list[str]:
        return self._listed(
            self.missing_captions, "Images without a caption, training with an empty caption"
        ) + self._listed(
            self.class_captioned,
            "Images without a caption, training with their class (class_tokens, else the `N_name` "
            "folder's name, as kohya)",
        )

    def _listed(self, paths: list[Path], what: str) -> list[str]:
        if not paths:
            return []
        captions = {item.path: item.caption for item in self.items}
        lines = [f"{what} ({len(paths)}):"]
        for path in paths[:_LISTED]:
            shown = f": '{captions[path]}'" if captions[path] else ""
            lines.append(f"  {path.relative_to(self.root).as_posix()}{shown}")
        if len(paths) > _LISTED:
            lines.append(f"  and {len(paths) - _LISTED} more")
        return lines


def scan_dataset(cfg: DataConfig, setting: str = "train_data_dir") -> DatasetIndex:
    """Find every image, its caption, repeats, size and bucket; fail now on anything unreadable.
    ``setting``: the key that names this folder (reg_data_dir, validation_dir scan theirs here too)."""
    root = cfg.train_data_dir
    if not root.is_dir():
        raise DataError(
            f"Training folder '{root}' does not exist",
            "Set train_data_dir in your config to the folder with your images",
        )
    if cfg.reg_data_dir is not None and not cfg.reg_data_dir.is_dir():  # said before the long scan
        raise DataError(
            f"Regularisation folder '{cfg.reg_data_dir}' (reg_data_dir) does not exist",
            "Set reg_data_dir to the folder of regularisation images, or remove it",
        )
    images, off = training_images(root)
    _log_folders(root, images, off, setting)
    if not images and off:
        raise switched_off_error(root, off)
    if not images:
        raise DataError(
            f"No images (jpg, png, webp) found in '{root}'",
            f"Put your training images in that folder or set {setting} to the folder that has them",
        )
    lenient = (
        cfg.doctor == "warn"
    )  # `doctor: warn`: skip what the doctor calls errors, say so, train the rest
    csv_path = _metadata_source(cfg)
    notes = EncodingNotes()  # files not in UTF-8: one log line per kind of file
    captions = csv_captions(csv_path, root, images, lenient, notes, off) if csv_path else {}
    sizes = _read_sizes(images, skip_bad=lenient)
    images = [path for path in images if path in sizes]
    if not images:
        raise DataError(f"None of the images in '{root}' can be read", "Re-export them as PNG or JPG")
    buckets = buckets_for(cfg)
    items, missing, by_class = [], [], []
    for path in images:
        caption = image_caption(path, captions, cfg.caption_extension, notes)
        if caption is None and (caption := class_caption(path, root, cfg.class_tokens)):
            by_class.append(path)
        if not caption:
            missing.append(path)
        repeats = _repeats(path, root, cfg.num_repeats)
        bucket = bucket_for(sizes[path], buckets, cfg)
        items.append(ImageItem(path, caption or "", repeats, sizes[path], bucket))
    index = DatasetIndex(items, missing, root, class_captioned=by_class)
    notes.log()
    _log_scan(index, csv_path)
    if cfg.reg_data_dir is not None:
        index.reg_items, index.reg_root = scan_reg_images(cfg), cfg.reg_data_dir
    return index


def scan_reg_images(cfg: DataConfig) -> list[ImageItem]:
    """The regularisation images of reg_data_dir, read like a training folder (`N_name` folders repeat);
    an image without a caption is captioned with reg_class_tokens, else its folder's class name (`1_woman`
    -> "woman"), as kohya does, and weighs prior_loss_weight in the loss."""
    if not list_images(cfg.reg_data_dir):
        raise DataError(
            f"No images (jpg, png, webp) found in reg_data_dir '{cfg.reg_data_dir}'",
            "Put the regularisation images there, or remove reg_data_dir",
        )
    reg_cfg = cfg.model_copy(
        update={
            "train_data_dir": cfg.reg_data_dir,
            "metadata_path": None,
            "reg_data_dir": None,
            "num_repeats": cfg.reg_num_repeats or cfg.num_repeats,
            "class_tokens": cfg.reg_class_tokens,
        }
    )
    reg = scan_dataset(reg_cfg, "reg_data_dir")
    return [replace(item, loss_weight=cfg.prior_loss_weight) for item in reg.items]


def reg_samples(reg_items: list[ImageItem], train_samples: int) -> list[ImageItem]:
    """kohya's balance: each regularisation image with its repeats until there are as many samples as
    training samples, then one more of each in turn until there are (the first pass may overshoot)."""
    if not reg_items or train_samples <= 0:
        return []
    counts = [0] * len(reg_items)
    n, first = 0, True
    while n < train_samples:
        for i, item in enumerate(reg_items):
            add = item.repeats if first else 1
            counts[i] += add
            n += add
            if n >= train_samples:
                break
        first = False
    return [item for item, c in zip(reg_items, counts, strict=True) for _ in range(c)]


def _metadata_source(cfg: DataConfig) -> Path | None:
    if cfg.metadata_path is not None:
        if cfg.metadata_path.is_dir():
            raise metadata_folder_error(cfg.metadata_path, "metadata_path")
        if not cfg.metadata_path.is_file():
            raise DataError(
                f"Metadata file '{cfg.metadata_path}' does not exist",
                "Fix metadata_path in your config, or remove it to use .txt caption files",
            )
        return cfg.metadata_path
    default = cfg.train_data_dir / "metadata.csv"
    return default if default.is_file() else None


def _read_sizes(images: list[Path], skip_bad: bool = False) -> dict[Path, tuple[int, int]]:
    """Every image's size, checking the pixel data; all unreadable files are reported together
    (or, with skip_bad, each is logged and left out)."""
    sizes, errors = {}, []
    for path in images:
        try:
            sizes[path] = image_size(path, verify=True)
        except DataError as err:
            errors.append((path, err))
    if skip_bad:
        for _path, err in errors:
            log.warning("Skipping an unreadable image (doctor: warn): %s", err)
        return sizes
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        names = ", ".join(f"'{path}'" for path, _ in errors[:_LISTED])
        more = f" and {len(errors) - _LISTED} more" if len(errors) > _LISTED else ""
        raise DataError(
            f"{len(errors)} images cannot be read (damaged, empty or not images): {names}{more}",
            "Re-export them as PNG or JPG, or delete them from the training folder",
        )
    return sizes


def _repeats(path: Path, root: Path, default: int) -> int:
    """Repeats from the closest `N_name` folder between ``root`` and the image, else ``default``."""
    named = class_folder(path, root)
    return named[0] if named else default


def _log_folders(root: Path, images: list[Path], off: list[Path], setting: str) -> None:
    """Say which `0_name` folders are left out, and when ``setting`` points at an `N_name` folder itself."""
    if off:
        folders = ", ".join(f"'{name}'" for name in switched_off_names(off, root))
        log.info(
            "Leaving out %d images in %s of '%s': a 0_ folder name means 0 repeats, which switches the "
            "folder off as in kohya",
            len(off),
            folders,
            root,
        )
    if warning := repeats_folder_warning(root, images, setting):
        log.warning(warning)


def _log_scan(index: DatasetIndex, csv_path: Path | None) -> None:
    source = f"'{csv_path}'" if csv_path else "caption files"
    log.info(
        "Found %d images (%d samples per epoch), captions from %s",
        index.num_images,
        index.num_samples,
        source,
    )
    if index.class_captioned:
        first = index.class_captioned[0]
        caption = next(item.caption for item in index.items if item.path == first)
        log.info(
            "%d images have no caption and train with their class, as in kohya (first: %s: %r)",
            len(index.class_captioned),
            first,
            caption,
        )
    if index.missing_captions:
        log.warning(
            "%d images have no caption and will train with an empty caption (first: %s)",
            len(index.missing_captions),
            index.missing_captions[0],
        )


def epoch_batches(index: DatasetIndex, batch_size: int, seed: int, epoch: int) -> list[list[ImageItem]]:
    """Batches for one epoch: repeats expanded, shuffled deterministically, one bucket per batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed * 1000003 + epoch)
    samples = [item for item in index.items for _ in range(item.repeats)]
    samples += reg_samples(index.reg_items, len(samples))
    rng.shuffle(samples)
    by_bucket: dict[tuple[int, int], list[ImageItem]] = {}
    for item in samples:
        by_bucket.setdefault(item.bucket, []).append(item)
    batches = [
        group[start : start + batch_size]
        for group in by_bucket.values()
        for start in range(0, len(group), batch_size)
    ]
    rng.shuffle(batches)
    return batches


def load_pixels(item: ImageItem, flip: bool = False, aug: Augment | None = None) -> torch.Tensor:
    """The image as float32 (3, h, w) in [-1, 1] at its bucket size, mirrored if ``flip``, with ``aug``'s
    crop position, colour change and mirroring (data/augment.py)."""
    aug = aug or Augment()
    img = open_image(item.path, at_least=max(item.bucket))
    # the crop from the size scanned (not the JPEG draft's), so size_conditioning describes these pixels
    img = resize_to_bucket(img, item.bucket, crop=bucket_crop(item.size, item.bucket, aug.crop_at))
    img = apply_color(img, aug)
    if flip or aug.flip:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def size_conditioning(item: ImageItem, aug: Augment | None = None) -> tuple[int, int, int, int, int, int]:
    """What `load_pixels(item, aug=aug)` made of the image, as SDXL's size/crop conditioning reads it:
    (original height, width, crop top, crop left, target height, width). The crop is in pixels of the image
    scaled to cover its bucket; a mirrored image reports the crop as seen in the mirror image (diffusers'
    SDXL scripts flip before cropping; kohya mirrors the crop's left edge the same way)."""
    aug = aug or Augment()
    crop = bucket_crop(item.size, item.bucket, aug.crop_at)
    (width, height), (target_w, target_h) = item.size, item.bucket
    left = crop.resized[0] - crop.left - target_w if aug.flip else crop.left
    return height, width, crop.top, left, target_h, target_w


def _subsets(items: list[ImageItem], root: Path) -> tuple[dict, dict]:
    """(subset folder -> repeats and image count, subset folder -> tag -> images), as kohya names them."""
    dirs: dict[str, dict[str, int]] = {}
    tags: dict[str, dict[str, int]] = {}
    for item in items:
        name = (subset_folder(item.path, root) or root).name
        entry = dirs.setdefault(name, {"n_repeats": item.repeats, "img_count": 0})
        entry["img_count"] += 1
        counts = tags.setdefault(name, {})
        for tag in split_tags(item.caption):  # "，" and "、" separate Chinese tags as "," does
            counts[tag] = counts.get(tag, 0) + 1
    return dirs, tags
