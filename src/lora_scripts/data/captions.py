"""Reading captions: metadata.csv (`filename,prompt`), sidecar .txt files, kohya `N_name` folders."""

from __future__ import annotations

import csv
import io
import logging
import random
import re
from pathlib import Path

from ..config.data import DataConfig
from ..errors import DataError

log = logging.getLogger(__name__)

FILENAME_COLUMNS = ("filename", "file_name")
PROMPT_COLUMNS = ("prompt", "caption", "text")
_REPEATS_FOLDER = re.compile(r"^(\d+)_(.+)$")


def read_metadata_csv(path: Path) -> dict[str, str]:
    """Map each file name in the csv (forward slashes) to its prompt; empty prompts are kept as ""."""
    rows = _read_rows(path)
    header_index = next((i for i, row in enumerate(rows) if _has_text(row)), None)
    if header_index is None:
        raise DataError(
            f"Metadata file '{path}' is empty", "Add a header line 'filename,prompt' and one row per image"
        )
    header = [cell.strip().lower() for cell in rows[header_index]]
    file_col, prompt_col = _header_columns(header, path)
    captions: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    for line_no, row in enumerate(rows[header_index + 1 :], start=header_index + 2):
        if not _has_text(row):
            continue
        name, prompt = _split_row(row, len(header), file_col, prompt_col)
        if not name:
            raise DataError(
                f"Row {line_no} of metadata file '{path}' has no file name",
                "Put the image file name in the 'filename' column or delete the row",
            )
        if name in captions and captions[name] != prompt:
            raise DataError(
                f"Metadata file '{path}' lists '{name}' twice with different prompts (rows {seen_at[name]} "
                f"and {line_no})",
                "Keep one row per image",
            )
        if name in captions:
            log.warning("%s lists '%s' twice with the same prompt; one row is enough", path, name)
        captions[name], seen_at[name] = prompt, line_no
    return captions


def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Metadata file '{path}' is not UTF-8 text",
            "Save it as UTF-8 (in Excel: 'CSV UTF-8 (comma delimited)') and try again",
        ) from exc
    except OSError as exc:
        raise DataError(f"Metadata file '{path}' cannot be read ({exc.strerror})", "Check the path") from exc
    try:
        return list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise DataError(
            f"Metadata file '{path}' is not a valid CSV file ({exc})",
            "Save it as a comma-separated CSV with a 'filename,prompt' header",
        ) from exc


def _has_text(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _header_columns(header: list[str], path: Path) -> tuple[int, int]:
    file_col = next((header.index(c) for c in FILENAME_COLUMNS if c in header), None)
    prompt_col = next((header.index(c) for c in PROMPT_COLUMNS if c in header), None)
    if file_col is None or prompt_col is None:
        raise DataError(
            f"Metadata file '{path}' has the header '{','.join(header)}' "
            "but needs the columns 'filename,prompt'",
            "Change its first line to 'filename,prompt'",
        )
    return file_col, prompt_col


def _split_row(row: list[str], width: int, file_col: int, prompt_col: int) -> tuple[str, str]:
    """Cells past the header width are unquoted commas inside the prompt: glue them back on."""
    extra = max(0, len(row) - width)
    prompt = ",".join(row[prompt_col : prompt_col + 1 + extra])
    if file_col > prompt_col:
        file_col += extra
    name = row[file_col] if file_col < len(row) else ""
    return name.strip().replace("\\", "/"), prompt.strip()


def read_sidecar(image: Path, extension: str) -> str | None:
    """The caption in ``<stem><extension>`` next to ``image`` (lines joined with a space), or None."""
    if not extension.startswith("."):
        extension = "." + extension
    sidecar = image.with_name(image.stem + extension)
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"Caption file '{sidecar}' is not UTF-8 text", "Save it as UTF-8 and try again"
        ) from exc
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def repeats_from_folder(folder_name: str) -> tuple[int, str] | None:
    """Kohya folder convention: ``10_tech phone`` -> (10, "tech phone"); None for other names."""
    match = _REPEATS_FOLDER.match(folder_name)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1)), match.group(2)


def make_caption(caption: str, cfg: DataConfig, rng: random.Random) -> str:
    """The caption for one training step: maybe dropped, maybe with its tags shuffled."""
    if cfg.caption_dropout_rate > 0 and rng.random() < cfg.caption_dropout_rate:
        return ""
    if not cfg.shuffle_caption:
        return caption
    tags = [tag.strip() for tag in caption.split(",") if tag.strip()]
    kept, rest = tags[: cfg.keep_tokens], tags[cfg.keep_tokens :]
    rng.shuffle(rest)
    return ", ".join(kept + rest)
