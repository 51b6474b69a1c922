"""`data` section: where the images and captions are and how they are fed to the model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import Section


class DataConfig(Section):
    train_data_dir: Path = Field(
        ...,
        description="Folder of training images (jpg/png/webp). Kohya-style `N_name` subfolders repeat their "
        "images N times per epoch.",
    )
    metadata_path: Path | None = Field(
        None,
        description="CSV with `filename,prompt` columns (what auto_label writes). When empty, captions "
        "come from "
        "`<image>.txt` sidecar files, else from `train_data_dir/metadata.csv` if it exists.",
    )
    caption_extension: str = Field(".txt", description="Extension of sidecar caption files.")
    resolution: int = Field(
        512,
        ge=64,
        le=4096,
        multiple_of=8,
        description='Training resolution in pixels (area of resolution²). kohya\'s `"1024,1024"` is read as '
        "1024; a width and height that differ are refused (buckets take their area from one side here).",
    )
    enable_bucket: bool = Field(
        True, description="Group images by aspect ratio into buckets instead of cropping everything square."
    )
    min_bucket_reso: int = Field(256, ge=32, description="Smallest bucket side in pixels.")
    max_bucket_reso: int = Field(1024, ge=64, description="Largest bucket side in pixels.")
    bucket_reso_steps: int = Field(64, ge=8, multiple_of=8, description="Bucket sides are multiples of this.")
    bucket_no_upscale: bool = Field(
        False,
        description="Never scale a small image up (kohya's): an image whose area is at most resolution² "
        "gets a bucket of its own size, each side rounded down to bucket_reso_steps (a side below one step "
        "takes one step), so it trains at its own resolution, trimmed to the bucket, never enlarged. "
        "A larger image is first scaled down to resolution² keeping its shape, then rounded the same way "
        "(kohya's buckets exactly; min/max_bucket_reso do not apply). With enable_bucket only.",
    )
    shuffle_caption: bool = Field(False, description="Shuffle comma-separated caption tags every step.")
    keep_tokens: int = Field(
        0,
        ge=0,
        description="Number of leading caption tags kept in place when shuffling (e.g. a trigger word).",
    )
    keep_tokens_separator: str = Field(
        "",
        description="Instead of keep_tokens, a marker in the caption such as `|||` (kohya's): the tags "
        "before it stay in place, those after it are shuffled and dropped, and tags after a second marker "
        "stay at the end. The marker itself is never part of the text.",
    )
    caption_dropout_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Probability of training a step with an empty caption."
    )
    caption_tag_dropout_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Probability of leaving out each comma-separated tag (after the keep_tokens ones) "
        "in a step, as kohya's.",
    )
    flip_aug: bool = Field(
        False, description="Randomly mirror images horizontally (not for asymmetric subjects)."
    )
    color_aug: bool = Field(
        False,
        description="Randomly change colours a little (kohya's color_aug): a third of the steps shift an "
        "image's hue by up to 16 degrees or apply a gamma of 0.95-1.05. No effect with cache_latents.",
    )
    random_crop: bool = Field(
        False,
        description="Crop an image that does not fit its bucket's shape at a random place instead of the "
        "centre. No effect with cache_latents.",
    )
    class_tokens: str | None = Field(
        None,
        description="Caption of a training image that has no caption at all (kohya's class_tokens, e.g. "
        "`sks gadget`); empty: the class name of its `N_name` folder (`10_sks gadget` -> `sks gadget`, as "
        "kohya), else an empty caption.",
    )
    reg_data_dir: Path | None = Field(
        None,
        description="Folder of regularisation (class) images, as kohya's: `N_class` subfolders repeat, and "
        "an image without a caption file is captioned with the folder's class name. Each epoch mixes in as "
        "many of them as training samples; their loss is weighted by prior_loss_weight.",
    )
    reg_class_tokens: str | None = Field(
        None,
        description="Caption of a regularisation image without a caption file (kohya's class_tokens of the "
        "regularisation subset); empty: the class name of its `N_class` folder.",
    )
    prior_loss_weight: float = Field(
        1.0, ge=0.0, le=100.0, description="Loss weight of the regularisation images (reg_data_dir)."
    )
    trigger_word: str | None = Field(
        None, description="Word every caption should contain (the doctor warns about captions without it)."
    )
    doctor: Literal["error", "warn", "off"] = Field(
        "error",
        description="Check the dataset before training (`lora-scripts doctor`): `error` stops on broken "
        "images or captions naming missing files, `warn` reports them, leaves them out and trains the rest, "
        "`off` skips the check.",
    )
    num_repeats: int = Field(
        1, ge=1, description="Times each image is seen per epoch (folders named `N_name` override this)."
    )
    reg_num_repeats: int | None = Field(
        None,
        ge=1,
        description="Times each regularisation image (reg_data_dir) is seen per epoch, where they are not in "
        "an `N_name` folder; empty: num_repeats. kohya's dataset TOML sets it from the regularisation "
        "subset's num_repeats.",
    )
    validation_split: float = Field(
        0.0,
        ge=0.0,
        description="Hold out images to measure how well the LoRA generalises: a fraction below 1 (0.1 = "
        "every tenth image) or a count (4 = four images). They are not trained on; their loss is drawn "
        "next to the training loss and warns when the LoRA starts to overfit. 0: off.",
    )
    validation_dir: Path | None = Field(
        None,
        description="A separate folder of held-out images (with captions like the training folder) instead "
        "of, or besides, validation_split.",
    )

    @field_validator("resolution", mode="before")
    @classmethod
    def _kohya_resolution(cls, v):
        """kohya's "1024,1024" (or [1024, 1024]): one side of a square; a rectangle cannot be honoured."""
        sides = v.split(",") if isinstance(v, str) and "," in v else v
        if not isinstance(sides, (list, tuple)):
            return v
        sides = [str(s).strip() for s in sides]
        if len(sides) != 2 or sides[0] != sides[1]:
            raise ValueError(
                f"one number, the side of a square ({','.join(sides)} is not square: buckets here take their "
                "area from one side; write the larger side to keep the area, or the smaller one)"
            )
        return sides[0]

    def for_scoring(self) -> DataConfig:
        """The settings held-out losses are computed with: captions as written, no flips."""
        return self.model_copy(
            update={
                "shuffle_caption": False,
                "caption_dropout_rate": 0.0,
                "caption_tag_dropout_rate": 0.0,
                "flip_aug": False,
                "color_aug": False,
                "random_crop": False,
            }
        )
