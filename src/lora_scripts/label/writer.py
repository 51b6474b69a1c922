"""Writing labels without losing hand edits: metadata.csv rows are appended, .txt sidecars only created.

An existing file is replaced only with ``overwrite``; every write goes through a temp file and a rename.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..data.captions import FILENAME_COLUMNS, PROMPT_COLUMNS, read_metadata_csv
from ..errors import DataError, OutputError
from ..save.atomic import atomic_write_bytes, probe_writable

HEADER = ["filename", "prompt"]


def check_writable(path: Path) -> None:
    """Fail before any model work when ``path`` cannot be written (folder missing, a file, read-only)."""
    if path.is_dir():
        raise OutputError(f"Output '{path}' is a folder", "Give a file path such as DIR/metadata.csv")
    try:
        probe_writable(path.parent)
    except OSError as exc:
        raise OutputError(
            f"Cannot write '{path}' ({getattr(exc, 'strerror', None) or exc})",
            "Choose an output path in a folder you can write to",
        ) from exc


def labelled_names(csv_path: Path) -> set[str]:
    """The file names an existing metadata.csv already has rows for (forward slashes)."""
    if not csv_path.is_file() or not _read(csv_path).strip():
        return set()
    return set(read_metadata_csv(csv_path))


def csv_text(rows: list[tuple[str, str]], existing: Path | None) -> str:
    """The new metadata.csv text: the existing file untouched (byte for byte) with ``rows`` appended."""
    old = _read(existing) if existing is not None and existing.is_file() else ""
    if not old.strip():
        return _rows_text([HEADER, *rows], "\n")
    newline = "\r\n" if "\r\n" in old else "\n"
    header = _header(old)
    file_col = header.index(_first(header, FILENAME_COLUMNS))
    prompt_col = header.index(_first(header, PROMPT_COLUMNS))
    laid_out = []
    for name, prompt in rows:
        row = [""] * len(header)
        row[file_col], row[prompt_col] = name, prompt
        laid_out.append(row)
    if old and not old.endswith(("\n", "\r")):
        old += newline
    return old + _rows_text(laid_out, newline)


def write_csv(path: Path, rows: list[tuple[str, str]], overwrite: bool) -> Path:
    return atomic_write_bytes(csv_text(rows, None if overwrite else path).encode("utf-8"), path)


def write_sidecars(images: dict[Path, str], extension: str, overwrite: bool) -> list[Path]:
    """One ``<stem><extension>`` per image; an existing one is kept unless ``overwrite``."""
    written = []
    for image, prompt in images.items():
        sidecar = image.with_name(image.stem + extension)
        if sidecar.exists() and not overwrite:
            continue
        written.append(atomic_write_bytes((prompt + "\n").encode("utf-8"), sidecar))
    return written


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")  # bytes: keep "\r\n" line ends exactly as they are
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"Metadata file '{path}' cannot be read as UTF-8 text",
            "Save it as UTF-8 (in Excel: 'CSV UTF-8'), or pass --overwrite to start a new one",
        ) from exc


def _rows_text(rows: list[list[str]] | list[tuple[str, str]], newline: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue()


def _header(text: str) -> list[str]:
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        if any(cell.strip() for cell in row):
            return [cell.strip().lower() for cell in row]
    return HEADER


def _first(header: list[str], names: tuple[str, ...]) -> str:
    return next(name for name in names if name in header)
