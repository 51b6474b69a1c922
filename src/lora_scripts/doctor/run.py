"""`doctor`: run every check on a training folder and collect the findings in one report."""

from __future__ import annotations

import logging
from pathlib import Path

import imagehash
from tqdm import tqdm

from ..config.data import DataConfig
from ..data.images import switched_off_error, training_images
from ..errors import DataError
from ..progress import StageProgress, stage_progress
from .captions import caption_findings, load_captions, tag_frequency
from .clutter import CLUTTER_EXPLAINED, CLUTTER_FLAG, clutter_score, describe_clutter
from .images import (
    broken_finding,
    duplicate_findings,
    file_params,
    folder_findings,
    names,
    preview,
    read_sizes,
    size_findings,
)
from .report import GROUPS, DoctorReport, Finding, plural

log = logging.getLogger(__name__)


def run_doctor(data: DataConfig) -> DoctorReport:
    """Check images and captions the way training will read them (metadata.csv first, else sidecars), with
    the training's data settings: folder, resolution, captions, trigger word, buckets (bucket_no_upscale)."""
    with stage_progress("doctor") as progress:  # images looked at, for the web UI's bar
        return _run_doctor(data, progress)


def _run_doctor(data: DataConfig, progress: StageProgress) -> DoctorReport:
    folder = Path(data.train_data_dir)
    if not folder.is_dir():
        raise DataError(f"Folder '{folder}' does not exist", "Pass the folder with your training images")
    images, off = training_images(folder)
    if not images and off:
        raise switched_off_error(folder, off)
    if not images:
        raise DataError(
            f"No images (jpg, png, webp, bmp) found in '{folder}'", "Pass the folder that has your images"
        )
    report = DoctorReport(folder, data.resolution, num_images=len(images))
    progress.begin(len(images))
    sizes, broken = read_sizes(images)
    report.findings += broken_finding(broken, folder)
    report.findings += size_findings(sizes, folder, data)
    hashes = _look_at_pixels(list(sizes), report, progress)
    progress.advance(len(broken))
    report.findings += duplicate_findings(hashes, folder)
    report.findings += _clutter_finding(report.clutter, folder)
    report.findings += folder_findings(folder, images, off)
    captions = load_captions(
        folder, images, data.metadata_path, data.caption_extension, data.class_tokens, left_out=off
    )
    report.caption_source = captions.source
    report.captions = {image: captions.by_image[image] for image in images if image in captions.by_image}
    report.num_captioned = len(report.captions)
    report.findings += caption_findings(captions, images, folder, data.trigger_word)
    report.findings += [
        Finding("note", "encoding", line, params={"detail": line}) for line in captions.encodings.lines()
    ]
    report.tag_frequency = tag_frequency(list(captions.by_image.values()))
    report.findings.sort(key=lambda finding: list(GROUPS).index(finding.level))
    return report


def _look_at_pixels(
    images: list[Path], report: DoctorReport, progress: StageProgress
) -> dict[Path, imagehash.ImageHash]:
    """Perceptual hash and clutter score of every readable image (one decode each)."""
    hashes = {}
    for path in tqdm(images, unit="image", desc="Checking images", disable=len(images) < 20):
        img = preview(path)
        hashes[path] = imagehash.phash(img)
        report.clutter[path] = clutter_score(img)
        progress.advance()
    return hashes


def _clutter_finding(clutter: dict[Path, float], root: Path) -> list[Finding]:
    busy = sorted((p for p, score in clutter.items() if score >= CLUTTER_FLAG), key=lambda p: -clutter[p])
    if not busy:
        return []
    detail = {path: f"clutter {clutter[path]:.2f}" for path in busy}
    message = (
        f"Busy background (edges and many colours around the subject) in {plural(len(busy), 'image')}, "
        f"the most common cause of a LoRA that learns the wrong things: {names(busy, root, detail=detail)}; "
        "look at them and crop or replace the busiest"
    )
    scores = tuple((path, describe_clutter(clutter[path])) for path in busy)
    params = file_params(busy, root)
    return [Finding("warning", "cluttered", message, tuple(busy), CLUTTER_EXPLAINED, scores, params)]
