"""`filename` backend (also `folder`): captions from the names designers already give folders and files, with
no model at all: `10_neon/phone_iphone-12_blue.jpg` -> "neon style, phone, iphone 12, blue".

Underscores (and commas) separate tags, hyphens and spaces separate the words of a tag. A kohya folder
`N_concept` gives its concept through the template ("{label} style" by default); other folders give their
words as tags. Camera names (IMG_0001, DSC01234, PXL_..., 微信图片_...), copy numbers "(1)" and counters or
dates (words without letters of 4+ characters or with a leading zero) are dropped; "iphone 12" keeps its 12.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..data.captions import repeats_from_folder

_CAMERA = re.compile(
    r"^(img|dsc[nf]?|dcim|pxl|mvimg|gopr|pict|imag|sam|mmexport|wp|screenshot|wechatimg|微信图片)\d*$",
    re.IGNORECASE,
)
_COPY = re.compile(r"\(\d+\)|（\d+）")  # "watch (1).png": the second copy of a file
_TAGS = re.compile(r"[_,，、]+")
_WORDS = re.compile(r"[-\s]+")


def name_tags(text: str) -> list[str]:
    """The tags in one folder or file name (without extension)."""
    tags = []
    for part in _TAGS.split(_COPY.sub(" ", text)):
        words = [word for word in _WORDS.split(part) if word and not _CAMERA.match(word)]
        if all(not _has_letters(word) for word in words):
            continue  # "0001", "2024-01-01"
        words = [word for word in words if not _counter(word)]
        tags.append(" ".join(words))
    return tags


def filename_caption(image: Path, root: Path, template: str) -> str:
    """Tags from the kohya folder (via ``template``), the other folders between ``root`` and the image, and
    the file name, each once, in that order."""
    folders = [root.name] if repeats_from_folder(root.name) else []
    folders += list(image.relative_to(root).parent.parts)
    tags = []
    for folder in folders:
        kohya = repeats_from_folder(folder)
        if kohya is not None:
            concept = " ".join(_WORDS.split(kohya[1].replace("_", " "))).strip()
            tags.append(template.format(label=concept) if concept else "")
        else:
            tags += name_tags(folder)
    tags += name_tags(image.stem)
    unique: dict[str, str] = {}  # lower-case -> first spelling, in order
    for tag in tags:
        if tag:
            unique.setdefault(tag.lower(), tag)
    return ", ".join(unique.values())


def _has_letters(word: str) -> bool:
    return any(char.isalpha() for char in word)


def _counter(word: str) -> bool:
    """A word without letters that counts or dates rather than describes: 0001, 01, 2024, 10.00.00."""
    return not _has_letters(word) and (len(word) >= 4 or word.startswith("0") or not word.isdigit())
