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
from .textfile import EncodingNotes, read_text_file

log = logging.getLogger(__name__)

FILENAME_COLUMNS = ("filename", "file_name")
PROMPT_COLUMNS = ("prompt", "caption", "text")
_REPEATS_FOLDER = re.compile(r"^(\d+)_(.+)$")
_TAG_SEPARATORS = re.compile(r"[,，、]")  # the comma, and the Chinese full-width comma and enumeration comma


CSV_HINT = "Save it as UTF-8 (in Excel: 'CSV UTF-8 (comma delimited)') and try again"
_ROW_START = re.compile(r'^\s*"?[^,"]+\.(png|jpe?g|webp|bmp)"?\s*,', re.IGNORECASE)  # `name.png,...`


def read_metadata_csv(path: Path, notes: EncodingNotes | None = None) -> dict[str, str]:
    """Map each file name in the csv (forward slashes) to its prompt; empty prompts are kept as "".
    A file with only its header gives {} (the doctor decides whether that is an error)."""
    if path.is_dir():
        raise metadata_folder_error(path, "Metadata file")
    decoded = read_text_file(path, "Metadata file", CSV_HINT)
    if notes is not None:
        notes.add("metadata file", path, decoded)
    return parse_metadata_csv(decoded.text, path)


def metadata_folder_error(path: Path, name: str) -> DataError:
    """``name`` ('metadata_path' or 'Metadata file') points at a folder instead of the csv in it."""
    inside = path / "metadata.csv"
    return DataError(
        f"{name} '{path}' is a folder, but it must be the metadata.csv file",
        f"Use '{inside}'" if inside.is_file() else "Point it at your metadata.csv file",
    )


def parse_metadata_csv(text: str, path: Path) -> dict[str, str]:
    """``read_metadata_csv`` on text already read (label/ checks a file before appending to it)."""
    rows = _read_rows(text, path)
    header_at = next((i for i, (_, row) in enumerate(rows) if _has_text(row)), None)
    if header_at is None:
        raise DataError(
            f"Metadata file '{path}' is empty", "Add a header line 'filename,prompt' and one row per image"
        )
    header = [cell.strip().lower() for cell in rows[header_at][1]]
    file_col, prompt_col = _header_columns(header, path)
    captions: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    for line_no, row in rows[header_at + 1 :]:
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


def _read_rows(text: str, path: Path) -> list[tuple[int, list[str]]]:
    """Each csv record with the line it starts on; a record over several lines is refused: a quote left
    open (or closed lines later) would silently make the rows after it part of one caption."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # line numbers as an editor shows them
    reader = csv.reader(io.StringIO(text))
    rows, end = [], 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if end > start or any("\n" in cell for cell in row):  # `"open` on the last line ends there
                raise _spanning_error(text, path, start, end)
            rows.append((start, row))
        if rows and _ends_inside_quote(text.split("\n")[rows[-1][0] - 1 :]):  # `"open` without a newline
            raise _spanning_error(text, path, rows[-1][0], rows[-1][0])
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):  # an open quote that ran over a long file
            raise _spanning_error(text, path, end + 1, len(text.split("\n"))) from exc
        raise DataError(
            f"Metadata file '{path}' is not a valid CSV file ({exc})",
            "Save it as a comma-separated CSV with a 'filename,prompt' header",
        ) from exc
    return rows


def _ends_inside_quote(lines: list[str]) -> bool:
    try:
        list(csv.reader(io.StringIO("\n".join(lines)), strict=True))
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _spanning_error(text: str, path: Path, start: int, end: int) -> DataError:
    lines = text.split("\n")
    last = len(lines) - (1 if lines[-1] == "" else 0)
    record = "\n".join(lines[start - 1 : end])
    swallowed = [m.group(0).strip(' ,"') for line in lines[start:end] if (m := _ROW_START.match(line))]
    rows = ""
    if swallowed:
        shown = ", ".join(f"'{name}'" for name in swallowed[:3]) + (", ..." if len(swallowed) > 3 else "")
        rows = f", swallowing the {'row' if len(swallowed) == 1 else 'rows'} for {shown}"
    if end >= last and record.count('"') % 2 == 1:
        after = "the lines after it become" if end > start else "rows added after it would become"
        return DataError(
            f"Line {start} of metadata file '{path}' opens a quote (\") that is never closed, so {after} "
            f"part of its caption{rows}",
            f'Add the closing " at the end of the caption on line {start}, or remove the opening one',
        )
    return DataError(
        f"The caption on line {start} of metadata file '{path}' runs on to line {end} because its quote "
        f'(") is not closed on line {start}{rows}',
        f'Keep each caption on one line: add the closing " at the end of line {start}, or remove the '
        "opening one",
    )


def _has_text(row: list[str]) -> bool:
    return any(cell.strip() for cell in row)


def _header_columns(header: list[str], path: Path) -> tuple[int, int]:
    file_col = next((header.index(c) for c in FILENAME_COLUMNS if c in header), None)
    prompt_col = next((header.index(c) for c in PROMPT_COLUMNS if c in header), None)
    if file_col is None or prompt_col is None:
        if any(";" in cell for cell in header):  # `filename;prompt`: Excel's CSV where ',' is a decimal mark
            raise DataError(
                f"Metadata file '{path}' uses ';' between columns",
                "Save it as a comma-separated CSV (in Excel: 'CSV UTF-8 (comma delimited)')",
            )
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


def read_sidecar(image: Path, extension: str, notes: EncodingNotes | None = None) -> str | None:
    """The caption in ``<stem><extension>`` next to ``image`` (lines joined with a space), or None."""
    if not extension.startswith("."):
        extension = "." + extension
    sidecar = image.with_name(image.stem + extension)
    if not sidecar.is_file():
        return None
    decoded = read_text_file(sidecar, "Caption file")
    if notes is not None:
        notes.add("caption file", sidecar, decoded)
    return " ".join(line.strip() for line in decoded.text.splitlines() if line.strip())


def repeats_from_folder(folder_name: str) -> tuple[int, str] | None:
    """Kohya folder convention: ``10_tech phone`` -> (10, "tech phone"); None for other names."""
    match = _REPEATS_FOLDER.match(folder_name)
    if match is None or int(match.group(1)) < 1:
        return None
    return int(match.group(1)), match.group(2)


def _folders_between(image: Path, root: Path) -> list[Path]:
    """The folders from ``image``'s own up to (not including) ``root``, closest first."""
    return [folder for folder in image.parents if root in folder.parents]


def switched_off_folder(image: Path, root: Path) -> Path | None:
    """The outermost kohya `0_name` folder between ``root`` and ``image``, or None: kohya leaves out a subset
    with fewer than 1 repeat, and people rename a folder to `0_name` to switch it off."""
    folders = _folders_between(image, root)
    off = [f for f in folders if (match := _REPEATS_FOLDER.match(f.name)) and int(match[1]) == 0]
    return off[-1] if off else None


def switched_off_names(images: list[Path], root: Path) -> list[str]:
    """The `0_name` folders (relative to ``root``) that switch off ``images``, each once."""
    folders = {switched_off_folder(image, root) for image in images} - {None}
    return sorted(folder.relative_to(root).as_posix() for folder in folders)


def repeats_folder_warning(root: Path, images: list[Path], setting: str = "train_data_dir") -> str | None:
    """The sentence for ``setting`` pointed at a kohya `N_name` folder with images directly in it (they train
    with the default repeats and no class caption: kohya reads `N_name` only below the folder), or None."""
    name = root.absolute().name
    if repeats_from_folder(name) is None or not any(image.parent == root for image in images):
        return None
    return (
        f"'{name}' is a kohya repeats folder: its repeats and class name are read only from subfolders of "
        f"{setting}; set {setting} to its parent folder"
    )


def subset_folder(image: Path, root: Path) -> Path | None:
    """The closest kohya `N_name` folder between ``root`` and ``image`` (kohya's subset), or None."""
    return next((f for f in _folders_between(image, root) if repeats_from_folder(f.name)), None)


def class_folder(image: Path, root: Path) -> tuple[int, str] | None:
    """The closest kohya `N_name` folder between ``root`` and ``image``: (repeats, class name), or None."""
    folder = subset_folder(image, root)
    return repeats_from_folder(folder.name) if folder is not None else None


def class_caption(image: Path, root: Path, class_tokens: str | None) -> str:
    """kohya's caption for an image that has no caption at all: ``class_tokens`` (a subset's class_tokens),
    else the class name of its `N_name` folder (`10_sks dog` -> "sks dog"), else ""."""
    if class_tokens:
        return class_tokens
    named = class_folder(image, root)
    return named[1] if named else ""


def make_caption(caption: str, cfg: DataConfig, rng: random.Random) -> str:
    """The caption for one training step: maybe dropped, maybe with its tags shuffled."""
    if cfg.caption_dropout_rate > 0 and rng.random() < cfg.caption_dropout_rate:
        return ""
    sep = cfg.keep_tokens_separator
    split = bool(sep) and sep in caption
    if not cfg.shuffle_caption and not cfg.caption_tag_dropout_rate and not split:
        return caption
    suffix: list[str] = []
    if split:  # kohya: "fixed ||| shuffled and dropped ||| fixed at the end"; the separator never stays
        head, _, rest_text = caption.partition(sep)
        middle, _, tail = rest_text.partition(sep)
        kept, rest, suffix = split_tags(head), split_tags(middle), split_tags(tail)
    else:
        tags = split_tags(caption)
        kept, rest = tags[: cfg.keep_tokens], tags[cfg.keep_tokens :]
    if cfg.shuffle_caption:
        rng.shuffle(rest)
    if cfg.caption_tag_dropout_rate:  # kohya: each tag after keep_tokens left out with this probability
        rest = [tag for tag in rest if rng.random() >= cfg.caption_tag_dropout_rate]
    return ", ".join(kept + rest + suffix)


def split_tags(caption: str) -> list[str]:
    """The tags of a caption, split on `,` and on the Chinese `，` and `、`; empty ones left out."""
    return [tag.strip() for tag in _TAG_SEPARATORS.split(caption) if tag.strip()]
