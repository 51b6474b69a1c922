"""Writing labels without losing hand edits: metadata.csv rows are appended, .txt sidecars only created.

An existing file is replaced only with ``overwrite``; every write goes through a temp file and a rename. We
write UTF-8 only: a metadata.csv in another encoding (GBK from Excel on Chinese Windows) is converted, and
the original is kept as ``metadata.csv.bak`` (``.bak1``, ... when that exists already).
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from ..data.captions import FILENAME_COLUMNS, PROMPT_COLUMNS, parse_metadata_csv
from ..data.textfile import DESCRIBED, UTF8_BOM, TextFile, decode_text, read_text_file
from ..errors import OutputError
from ..save.atomic import atomic_write_bytes, probe_writable

log = logging.getLogger(__name__)

HEADER = ["filename", "prompt"]
_READ_HINT = "Save it as UTF-8 (in Excel: 'CSV UTF-8'), or pass --overwrite to start a new one"


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
    """The file names an existing metadata.csv already has rows for (forward slashes). A file whose quote
    swallows the rows after it is refused here, before any model work, with the line to fix."""
    existing = _existing(csv_path)
    if existing is None or not existing.text.strip():
        return set()
    return set(parse_metadata_csv(existing.text, csv_path))


def csv_text(rows: list[tuple[str, str]], existing: TextFile | None, path: Path | None = None) -> str:
    """The new metadata.csv text: the existing text untouched with ``rows`` appended, after checking that
    it ends outside a quote (else the new rows would land inside the last caption)."""
    old = existing.text if existing is not None else ""
    if not old.strip():
        return _rows_text([HEADER, *rows], "\n")
    parse_metadata_csv(old, path or Path("metadata.csv"))  # header, columns, no caption over several lines
    newline = "\r\n" if "\r\n" in old else "\n"
    header = _header(old)
    file_col = header.index(_first(header, FILENAME_COLUMNS))
    prompt_col = header.index(_first(header, PROMPT_COLUMNS))
    laid_out = []
    for name, prompt in rows:
        row = [""] * len(header)
        row[file_col], row[prompt_col] = name, prompt
        laid_out.append(row)
    if not old.endswith(("\n", "\r")):
        old += newline
    return old + _rows_text(laid_out, newline)


def write_csv(path: Path, rows: list[tuple[str, str]], overwrite: bool) -> Path:
    """Append ``rows`` (or, with ``overwrite``, start anew) in UTF-8; a file that was not UTF-8 is kept."""
    existing = None if overwrite else _existing(path)
    text = csv_text(rows, existing, path)
    bom = "\ufeff" if existing is not None and existing.encoding == UTF8_BOM else ""
    kept = _keep_if_not_utf8(path, existing)
    atomic_write_bytes((bom + text).encode("utf-8"), path)
    if kept is not None:
        backup, was = kept
        log.info("Converted '%s' from %s to UTF-8; the original is kept as '%s'", path.name, was, backup.name)
    return path


def backup_path(path: Path) -> Path:
    """``<name>.bak``, or the first free ``<name>.bak1``, ``.bak2``...: an older backup is never replaced."""
    candidate, n = path.with_name(path.name + ".bak"), 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak{n}")
    return candidate


def _keep_if_not_utf8(path: Path, existing: TextFile | None) -> tuple[Path, str] | None:
    """Copy a metadata.csv we are about to replace to ``backup_path`` when it is not UTF-8: (copy, its
    encoding in words). UTF-8 files are appended to as they are, or replaced as asked by ``overwrite``."""
    if existing is not None and existing.is_utf8:
        return None
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    decoded = existing if existing is not None else decode_text(data)
    if decoded is not None and decoded.is_utf8:
        return None
    backup = backup_path(path)
    with open(backup, "xb") as handle:  # "x": never over an existing file, even one made meanwhile
        handle.write(data)
    was = DESCRIBED.get(decoded.encoding, decoded.encoding) if decoded else "an encoding other than UTF-8"
    return backup, was


def write_sidecars(images: dict[Path, str], extension: str, overwrite: bool) -> list[Path]:
    """One ``<stem><extension>`` per image; an existing one is kept unless ``overwrite``."""
    written = []
    for image, prompt in images.items():
        sidecar = image.with_name(image.stem + extension)
        if sidecar.exists() and not overwrite:
            continue
        written.append(atomic_write_bytes((prompt + "\n").encode("utf-8"), sidecar))
    return written


def _existing(path: Path) -> TextFile | None:
    """The metadata.csv as it is (UTF-8 or GB18030, line ends kept), or None when there is none."""
    if not path.is_file():
        return None
    return read_text_file(path, "Metadata file", _READ_HINT)


def _rows_text(rows: list[list[str]] | list[tuple[str, str]], newline: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    return buffer.getvalue()


def _header(text: str) -> list[str]:
    for row in csv.reader(io.StringIO(text)):
        if any(cell.strip() for cell in row):
            return [cell.strip().lower() for cell in row]
    return HEADER


def _first(header: list[str], names: tuple[str, ...]) -> str:
    return next(name for name in names if name in header)
