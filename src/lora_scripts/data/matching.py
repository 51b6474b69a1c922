"""Matching metadata.csv rows to the images found in the training folder."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .captions import read_metadata_csv, read_sidecar
from .images import IMAGE_EXTENSIONS
from .textfile import EncodingNotes

log = logging.getLogger(__name__)


@dataclass
class CsvMatch:
    """Each metadata row matched to its image; rows that match none are kept as errors, in file order."""

    captions: dict[Path, str] = field(default_factory=dict)  # image -> prompt
    problems: list[DataError] = field(default_factory=list)  # MissingImageRow, or a row training refuses

    @property
    def missing(self) -> list[MissingImageRow]:
        """Rows naming an image that is not in the folder (`doctor: warn` leaves them out)."""
        return [p for p in self.problems if isinstance(p, MissingImageRow)]

    @property
    def refused(self) -> list[DataError]:
        """Rows that stop training even with `doctor: warn` (outside the folder, several matches)."""
        return [p for p in self.problems if not isinstance(p, MissingImageRow)]


def match_csv(
    rows: dict[str, str], csv_path: Path, root: Path, images: list[Path], left_out: Iterable[Path] = ()
) -> CsvMatch:
    """Match ``read_metadata_csv`` rows to ``images`` the way training does (the doctor uses this too).
    Rows naming only an image of ``left_out`` (in a switched-off `0_name` folder) are passed over."""
    by_rel = {image.relative_to(root).as_posix(): image for image in images}
    by_name: dict[str, list[Path]] = defaultdict(list)
    for image in images:
        by_name[image.name].append(image)
    off = {image.relative_to(root).as_posix() for image in left_out}
    off_names = {image.name for image in left_out}
    match = CsvMatch()
    for name, prompt in rows.items():
        try:
            match.captions[_match_row(name, csv_path, root, by_rel, by_name)] = prompt
        except MissingImageRow as err:
            rel = _relative_inside(name, csv_path, root)
            if rel not in off and ("/" in rel or rel not in off_names):
                match.problems.append(err)
        except DataError as err:
            match.problems.append(err)
    return match


def csv_captions(
    csv_path: Path,
    root: Path,
    images: list[Path],
    skip_missing: bool = False,
    notes: EncodingNotes | None = None,
    left_out: Iterable[Path] = (),
) -> dict[Path, str]:
    """Captions from ``csv_path`` keyed by image path; every row must name an image inside ``root``
    (with skip_missing, rows naming no existing image are logged and ignored) or one of ``left_out``."""
    match = match_csv(read_metadata_csv(csv_path, notes), csv_path, root, images, left_out)
    for err in match.problems:
        if not (skip_missing and isinstance(err, MissingImageRow)):
            raise err
        log.warning("Ignoring a metadata row (doctor: warn): %s", err)
    return match.captions


def image_caption(
    image: Path, from_csv: dict[Path, str], extension: str, notes: EncodingNotes | None = None
) -> str | None:
    """The caption training uses for ``image``: its metadata row's prompt, else its sidecar file."""
    return from_csv.get(image) or read_sidecar(image, extension, notes)


def _match_row(
    name: str, csv_path: Path, root: Path, by_rel: dict[str, Path], by_name: dict[str, list[Path]]
) -> Path:
    rel = _relative_inside(name, csv_path, root)
    if rel in by_rel:
        return by_rel[rel]
    candidates = by_name.get(rel, []) if "/" not in rel else []
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        found = ", ".join(f"'{c.relative_to(root).as_posix()}'" for c in candidates)
        raise DataError(
            f"Metadata file '{csv_path}' lists '{name}', which matches several images ({found})",
            "Write the path relative to train_data_dir in the filename column, e.g. '10_name/image.png'",
        )
    raise _missing_row_error(name, csv_path, root)


def _relative_inside(name: str, csv_path: Path, root: Path) -> str:
    """The row's path relative to ``root`` (forward slashes), refusing anything that points outside it."""
    root_abs = os.path.abspath(root)
    full = os.path.normpath(os.path.join(root_abs, name))
    if os.path.commonpath([root_abs, full]) != root_abs:
        raise DataError(
            f"Metadata file '{csv_path}' lists '{name}', which is outside the training folder '{root}'",
            "Move the image into train_data_dir and write its path relative to that folder",
        )
    return Path(os.path.relpath(full, root_abs)).as_posix()


class MissingImageRow(DataError):
    """A metadata row names an image that is not in the training folder."""

    def __init__(self, row: str, what: str, hint: str | None = None):
        self.row = row  # the file name as the row writes it
        super().__init__(what, hint)


def _missing_row_error(name: str, csv_path: Path, root: Path) -> DataError:
    target = root / name
    if target.is_file() and target.suffix.lower() not in IMAGE_EXTENSIONS:
        return MissingImageRow(
            name,
            f"Metadata file '{csv_path}' lists '{name}', "
            "which is not a supported image (jpg, png, webp, bmp)",
            "Convert it to PNG or JPG, or delete that row",
        )
    return MissingImageRow(
        name,
        f"Metadata file '{csv_path}' lists '{name}', but that image does not exist in '{root}'",
        "Fix the file name in that row, add the image, or delete the row",
    )
