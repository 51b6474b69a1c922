"""Image checks: unreadable files, images below the training resolution, extreme shapes, duplicates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps

from ..config.data import DataConfig
from ..data.buckets import bucket_crop, bucket_for, buckets_for
from ..data.captions import repeats_folder_warning, switched_off_names
from ..data.images import image_size
from ..errors import DataError
from .report import Finding, plural

MAX_ASPECT = 2.5  # longer side / shorter side; beyond this buckets crop or squash a lot
NEAR_DUPLICATE_BITS = 6  # perceptual-hash Hamming distance (of 64 bits) that counts as the same picture
PREVIEW = 512


def names(paths: list[Path], root: Path, limit: int = 5, detail: dict[Path, str] | None = None) -> str:
    """ "a.png, b.png (300x200) and 3 more": file names relative to ``root`` for a sentence."""
    shown = []
    for path in paths[:limit]:
        extra = f" ({detail[path]})" if detail and path in detail else ""
        shown.append(f"{path.relative_to(root).as_posix()}{extra}")
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(shown) + more


def file_params(paths: list[Path], root: Path, limit: int = 5) -> dict:
    """The files a sentence names, as data: {"n", "files" (the first `limit`, relative), "more"}."""
    shown = [path.relative_to(root).as_posix() for path in paths[:limit]]
    return {"n": len(paths), "files": shown, "more": max(0, len(paths) - limit)}


def folder_findings(root: Path, images: list[Path], off: list[Path]) -> list[Finding]:
    """Folders training reads differently from what their names suggest: `0_name` folders left out (kohya's
    switch), and a training folder that is itself an `N_name` folder (data/'s own sentence)."""
    findings = []
    if off:
        folders = switched_off_names(off, root)
        shown = ", ".join(f"'{name}'" for name in folders)
        message = (
            f"{plural(len(off), 'image')} in {shown} are left out of training because a 0_ folder name means "
            "0 repeats, which switches the folder off as in kohya; rename it to e.g. '1_name' to train them"
        )
        params = {"n": len(off), "folders": "、".join(folders)}
        findings.append(Finding("note", "switched off", message, params=params))
    if warning := repeats_folder_warning(root, images):
        params = {"folder": root.absolute().name}
        findings.append(Finding("warning", "repeats folder", warning, params=params))
    return findings


def read_sizes(images: list[Path]) -> tuple[dict[Path, tuple[int, int]], dict[Path, str]]:
    """(width, height) of every readable image, and the reason for every unreadable one."""
    sizes, broken = {}, {}
    for path in images:
        try:
            sizes[path] = image_size(path, verify=True)
        except DataError as err:
            broken[path] = err.what.split("(", 1)[-1].rstrip(")")
    return sizes, broken


def broken_finding(broken: dict[Path, str], root: Path) -> list[Finding]:
    if not broken:
        return []
    paths = list(broken)
    message = (
        f"{plural(len(paths), 'image')} cannot be read (empty, truncated or not images): "
        f"{names(paths, root, detail=broken)}; re-export them as PNG or JPG, or delete them"
    )
    return [Finding("error", "unreadable", message, tuple(paths), params=file_params(paths, root))]


def size_findings(sizes: dict[Path, tuple[int, int]], root: Path, data: DataConfig) -> list[Finding]:
    """Images training enlarges, and extreme shapes. ``data`` is the training's data settings: an image that
    bucket_no_upscale gives a bucket of its own size is not enlarged, so it is not named."""
    resolution = data.resolution
    detail = {path: f"{w}x{h}" for path, (w, h) in sizes.items()}
    enlarged = _enlarged_by(data)
    small = [path for path, (w, h) in sizes.items() if min(w, h) < resolution and enlarged((w, h))]
    wide = [path for path, (w, h) in sizes.items() if max(w, h) / max(1, min(w, h)) > MAX_ASPECT]
    findings = []
    if small:
        findings.append(
            Finding(
                "warning",
                "smaller than resolution",
                f"{plural(len(small), 'image')} will be upscaled (soft results) because the shorter side "
                f"is below the training resolution {resolution} px: {names(small, root, detail=detail)}; "
                "use larger versions or a lower resolution",
                tuple(small),
                f"WxH = width x height in pixels; a shorter side below {resolution} (the training "
                "resolution) is too small",
                tuple((path, f"{detail[path]} px") for path in small),
                params={**file_params(small, root), "resolution": resolution},
            )
        )
    if wide:
        findings.append(
            Finding(
                "warning",
                "extreme aspect ratio",
                f"{plural(len(wide), 'image')} wider or taller than {MAX_ASPECT}:1 will be cropped hard: "
                f"{names(wide, root, detail=detail)}; crop them to the part that matters",
                tuple(wide),
                f"WxH = width x height in pixels; a longer side over {MAX_ASPECT} times the shorter one is "
                "extreme",
                tuple((path, f"{detail[path]} px") for path in wide),
                params={**file_params(wide, root), "ratio": MAX_ASPECT},
            )
        )
    return findings


def _enlarged_by(data: DataConfig):
    """size -> whether training scales the image up; data/buckets.py decides under bucket_no_upscale (every
    image keeps its size or is made smaller; only a side shorter than bucket_reso_steps is made one step)."""
    if not (data.enable_bucket and data.bucket_no_upscale):
        return lambda _size: True
    buckets = buckets_for(data)

    def enlarged(size: tuple[int, int]) -> bool:
        resized = bucket_crop(size, bucket_for(size, buckets, data)).resized
        return resized[0] > size[0] or resized[1] > size[1]

    return enlarged


def preview(path: Path) -> Image.Image:
    """A small upright RGB version (JPEGs decode at reduced scale: fast on large photos)."""
    with Image.open(path) as img:
        img.draft("RGB", (PREVIEW, PREVIEW))
        upright = ImageOps.exif_transpose(img)
        upright.thumbnail((PREVIEW, PREVIEW))
        return upright.convert("RGB")


def duplicate_findings(hashes: dict[Path, imagehash.ImageHash], root: Path) -> list[Finding]:
    """Exact duplicates (same bytes) and near-duplicates (perceptual hashes within a few bits)."""
    paths = list(hashes)
    if len(paths) < 2:
        return []
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}
    by_digest: dict[str, list[Path]] = {}
    for path in paths:
        by_digest.setdefault(digests[path], []).append(path)
    exact = [group for group in by_digest.values() if len(group) > 1]
    bits = np.array([hashes[p].hash.ravel() for p in paths], dtype=bool).reshape(len(paths), -1)
    near_pairs = set()
    for i in range(len(paths)):
        close = np.nonzero((bits[i + 1 :] != bits[i]).sum(axis=1) <= NEAR_DUPLICATE_BITS)[0] + i + 1
        near_pairs.update((i, int(j)) for j in close if digests[paths[i]] != digests[paths[int(j)]])
    near = _groups(paths, near_pairs)
    findings = []
    for level, title, groups, advice in (
        ("warning", "exact duplicate", exact, "keep one of each"),
        ("warning", "near-duplicate", near, "keep the best of each group unless the repeat is on purpose"),
    ):
        if groups:
            text = "; ".join(names(group, root, limit=4) for group in groups[:5])
            more = f" and {len(groups) - 5} more groups" if len(groups) > 5 else ""
            title_n = f"{plural(len(groups), 'group')} of {title}s"
            message = f"{title_n} (they weigh more in training): {text}{more}; {advice}"
            params = {"groups": len(groups), **file_params([p for g in groups for p in g], root, 8)}
            findings.append(
                Finding(level, title, message, tuple(p for g in groups for p in g), params=params)
            )
    return findings


def _groups(paths: list[Path], pairs: set[tuple[int, int]]) -> list[list[Path]]:
    """Connected groups (size > 1) of the graph whose edges are ``pairs`` of indices into ``paths``."""
    parent = list(range(len(paths)))

    def root_of(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root_of(j)] = root_of(i)
    groups: dict[int, list[Path]] = {}
    for i, path in enumerate(paths):
        groups.setdefault(root_of(i), []).append(path)
    return [group for group in groups.values() if len(group) > 1]
