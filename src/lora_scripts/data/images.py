"""Finding and opening training images: every image comes out as an upright RGB picture."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError
from .captions import switched_off_folder, switched_off_names

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}

_ORIENTATION_TAG = 0x0112
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_REEXPORT_HINT = "Re-export it as PNG or JPG, or delete it from the training folder"
# What Pillow raises for a file it cannot decode: not an image (UnidentifiedImageError), truncated or corrupt
# data (OSError, SyntaxError, EOFError, struct.error, ValueError), more pixels than its bomb guard allows.
# Anything else (TypeError, AttributeError...) is a bug in this code and is not reported as a bad file.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError)


def list_images(folder: Path) -> list[Path]:
    """All images under ``folder`` (recursive, sorted), skipping hidden files and hidden folders."""
    found = []
    for path in folder.rglob("*"):
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found)


def training_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images training reads, images it leaves out) under ``folder``: an image under a kohya `0_name`
    folder (0 repeats) is left out, as kohya does; training and the doctor both list images here."""
    kept, off = [], []
    for path in list_images(folder):
        (off if switched_off_folder(path, folder) else kept).append(path)
    return kept, off


def switched_off_error(root: Path, off: list[Path]) -> DataError:
    """Every image under ``root`` is in a `0_name` folder (``off``)."""
    return DataError(
        f"Every image in '{root}' is in a folder switched off by its 0_ name "
        f"({', '.join(switched_off_names(off, root))}: 0 repeats, as in kohya)",
        "Rename the folder to start with how often to repeat its images, e.g. '1_name'",
    )


def unreadable_image_error(path: Path, exc: BaseException) -> DataError:
    """The DataError for an image file that Pillow cannot decode."""
    if path.is_file() and path.stat().st_size == 0:
        reason = "the file is empty"
    elif isinstance(exc, UnidentifiedImageError):
        reason = "it is not an image, or its format is not supported"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    elif isinstance(exc, Image.DecompressionBombError):
        return DataError(
            f"Image '{path}' cannot be read (it has more pixels than Pillow's safety limit: {exc})",
            "Resize it to a few megapixels; training uses far fewer pixels anyway",
        )
    else:
        reason = f"it is damaged or incomplete: {exc}"
    return DataError(f"Image '{path}' cannot be read ({reason})", _REEXPORT_HINT)


def open_image(path: Path, at_least: int | None = None) -> Image.Image:
    """Decode ``path`` and return it upright (EXIF orientation applied) in RGB mode.

    ``at_least``: the image is only needed with both sides >= this many pixels, so a JPEG may be decoded
    at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's draft mode): a 3000x2000 photo for a 512 px
    bucket decodes in ~20 ms instead of ~86 ms (docs/benchmarks.md), and is then resized as before."""
    try:
        with Image.open(path) as img:
            if at_least and img.format == "JPEG":
                img.draft("RGB", (at_least, at_least))
            img.load()
            upright = ImageOps.exif_transpose(img)
            return _to_rgb(upright)
    except DECODE_ERRORS as exc:
        raise unreadable_image_error(path, exc) from exc


def image_size(path: Path, *, verify: bool = False) -> tuple[int, int]:
    """(width, height) after EXIF orientation, read from the header.

    With ``verify`` the pixel data is also checked (cheaply where the format allows), so truncated files
    raise here instead of in the middle of training.
    """
    try:
        with Image.open(path) as img:
            width, height = img.size
            if verify:
                _check_pixels(img)
            orientation = _orientation(img, loaded=verify)
    except DECODE_ERRORS as exc:
        raise unreadable_image_error(path, exc) from exc
    if orientation in _SWAPPED_ORIENTATIONS:
        return height, width
    return width, height


def _orientation(img: Image.Image, loaded: bool) -> int:
    if img.format == "PNG" and "exif" not in img.info and not loaded:
        return 1  # an eXIf chunk after the pixel data: finding it would decode the whole image
    return img.getexif().get(_ORIENTATION_TAG, 1)


def _check_pixels(img: Image.Image) -> None:
    """Decode all compressed data (JPEG at 1/8 scale, which still reads every byte)."""
    if img.format == "JPEG":
        img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
    img.load()


def _to_rgb(img: Image.Image) -> Image.Image:
    if "A" in img.getbands() or "transparency" in img.info:
        return _on_white(img)
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_rgb(img)
    return img.convert("RGB")


def _on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _sixteen_bit_to_rgb(img: Image.Image) -> Image.Image:
    values = np.asarray(img).astype(np.float64)
    if values.size and values.max() > 255:
        values = values / 257.0
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
