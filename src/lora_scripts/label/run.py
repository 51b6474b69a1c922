"""`label`: propose a prompt for every image that has none yet, and write it without losing hand edits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..data.images import image_size, list_images, open_image
from ..errors import ConfigError, DataError
from ..progress import StageProgress, stage_progress
from .source import resolve_model
from .writer import check_writable, labelled_names, write_csv, write_sidecars

log = logging.getLogger(__name__)

BACKENDS = ("classify", "caption", "tags", "filename", "folder")
NAME_BACKENDS = ("filename", "folder")  # captions from folder and file names, no model
FORMATS = ("csv", "txt")
Labeller = Callable[[list[Image.Image]], list[str]]


@dataclass
class LabelOptions:
    input: Path
    output: Path | None = None  # metadata.csv; default <input>/metadata.csv
    backend: str = "classify"
    model: str | None = None  # folder or hub id; default per backend (see source.DEFAULT_MODELS)
    template: str = "{label} style"  # classify; filename: for the concept of a kohya `N_concept` folder
    top_k: int = 1  # classify only
    trigger: str | None = None
    batch_size: int = 8
    format: str = "csv"  # or "txt": <image stem>.txt next to each image (kohya)
    caption_extension: str = ".txt"
    overwrite: bool = False
    general_threshold: float = 0.35  # tags only
    character_threshold: float = 0.85  # tags only
    blacklist: list[str] = field(default_factory=list)  # tags only
    max_new_tokens: int = 40  # caption only
    device: str = "auto"


@dataclass
class LabelResult:
    written: list[Path]
    labelled: int
    kept: int


def label_folder(opts: LabelOptions) -> LabelResult:
    """Label the images that have no caption yet (all of them with ``overwrite``) and write the result."""
    with stage_progress("label") as progress:  # images labelled, for the web UI's bar
        return _label_folder(opts, progress)


def _label_folder(opts: LabelOptions, progress: StageProgress) -> LabelResult:
    _check_options(opts)
    images = _find_images(opts.input)
    target = opts.output or opts.input / "metadata.csv"
    if opts.format == "csv":
        check_writable(target)
    todo = _unlabelled(images, opts, target)
    kept = len(images) - len(todo)
    if not todo:
        log.info("All %d images already have captions; nothing to do (--overwrite labels them again)", kept)
        return LabelResult([], 0, kept)
    _check_readable(todo)
    progress.begin(len(todo))
    if opts.backend in NAME_BACKENDS:
        prompts = _label_from_names(todo, opts)
        progress.advance(len(todo))
    else:
        prompts = _label_all(make_labeller(opts), todo, opts, progress)
    if opts.format == "txt":
        written = write_sidecars(prompts, opts.caption_extension, opts.overwrite)
    else:
        rows = [(path.relative_to(opts.input).as_posix(), prompt) for path, prompt in prompts.items()]
        written = [write_csv(target, rows, opts.overwrite)]
    log.info("Labelled %d images, kept %d existing captions", len(todo), kept)
    return LabelResult(written, len(todo), kept)


def make_labeller(opts: LabelOptions) -> Labeller:
    from .hub import reach

    ref = reach(resolve_model(opts.model, opts.backend))
    if opts.backend == "classify":
        from .classify import Classifier

        return Classifier(ref, opts.template, opts.top_k, opts.device)
    if opts.backend == "caption":
        from .caption import Captioner

        return Captioner(ref, opts.max_new_tokens, opts.device)
    from .tags import Tagger

    return Tagger(ref, opts.general_threshold, opts.character_threshold, opts.blacklist)


def with_trigger(prompt: str, trigger: str | None) -> str:
    if not trigger or prompt.lower().startswith(trigger.lower()):
        return prompt
    return f"{trigger}, {prompt}" if prompt else trigger


def _check_options(opts: LabelOptions) -> None:
    if opts.backend not in BACKENDS:
        raise ConfigError(f"Unknown backend '{opts.backend}'", f"Use one of: {', '.join(BACKENDS)}")
    if opts.format not in FORMATS:
        raise ConfigError(f"Unknown output format '{opts.format}'", "Use csv (metadata.csv) or txt")
    if opts.batch_size < 1:
        raise ConfigError(f"--batch-size is {opts.batch_size}", "Use 1 or more images per batch")
    if opts.format == "txt" and opts.output is not None:
        raise ConfigError(
            "--output names a metadata.csv, but --format txt writes one .txt file next to each image",
            "Leave out --output, or use --format csv",
        )


def _find_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"Input folder '{folder}' does not exist", "Pass the folder with your images")
    images = list_images(folder)
    if not images:
        raise DataError(
            f"No images (jpg, png, webp, bmp) found in '{folder}'", "Pass the folder that has your images"
        )
    return images


def _unlabelled(images: list[Path], opts: LabelOptions, target: Path) -> list[Path]:
    if opts.overwrite:
        return images
    if opts.format == "txt":
        return [p for p in images if not p.with_name(p.stem + opts.caption_extension).exists()]
    names = labelled_names(target)
    return [p for p in images if p.relative_to(opts.input).as_posix() not in names and p.name not in names]


def _check_readable(images: list[Path]) -> None:
    """Every image is decoded before the model loads, so a bad file costs seconds, not a labelling run."""
    errors = []
    for path in images:
        try:
            image_size(path, verify=True)
        except DataError as err:
            errors.append(err)
    if len(errors) > 1:
        raise DataError(
            f"{len(errors)} images cannot be read; the first: {errors[0].what}",
            "Re-export them as PNG or JPG, or delete them; nothing was written",
        )
    if errors:
        raise DataError(errors[0].what, "Re-export it as PNG or JPG, or delete it; nothing was written")


def _label_all(
    labeller: Labeller, images: list[Path], opts: LabelOptions, progress: StageProgress
) -> dict[Path, str]:
    prompts: dict[Path, str] = {}
    with tqdm(total=len(images), unit="image", desc=f"Labelling ({opts.backend})") as bar:
        for start in range(0, len(images), opts.batch_size):
            batch = images[start : start + opts.batch_size]
            texts = labeller([open_image(path) for path in batch])
            for path, text in zip(batch, texts, strict=True):
                prompts[path] = with_trigger(text.strip(), opts.trigger)
            bar.update(len(batch))
            progress.advance(len(batch))
    return prompts


def _label_from_names(images: list[Path], opts: LabelOptions) -> dict[Path, str]:
    from .classify import check_template
    from .filename import filename_caption

    check_template(opts.template)
    return {
        path: with_trigger(filename_caption(path, opts.input, opts.template), opts.trigger) for path in images
    }
