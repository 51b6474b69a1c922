"""Training data: images, captions, aspect-ratio buckets and per-epoch batches."""

from .augment import Augment, draw_augment
from .buckets import Crop, assign_bucket, bucket_crop, buckets_for, make_buckets, resize_to_bucket
from .captions import make_caption, read_metadata_csv, read_sidecar, repeats_from_folder
from .dataset import DatasetIndex, ImageItem, epoch_batches, load_pixels, scan_dataset, size_conditioning
from .images import IMAGE_EXTENSIONS, image_size, list_images, open_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "Augment",
    "Crop",
    "DatasetIndex",
    "ImageItem",
    "assign_bucket",
    "bucket_crop",
    "buckets_for",
    "draw_augment",
    "epoch_batches",
    "image_size",
    "list_images",
    "load_pixels",
    "make_buckets",
    "make_caption",
    "open_image",
    "read_metadata_csv",
    "read_sidecar",
    "repeats_from_folder",
    "resize_to_bucket",
    "scan_dataset",
    "size_conditioning",
]
