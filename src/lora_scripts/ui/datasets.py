"""Datasets in the workspace: folders of images with a metadata.csv. Uploads (images or a zip) land in a
dataset folder; a zip member that would land outside it (`../x`, `/etc/x`, a link) is refused before
anything is written. Captions are edited one row at a time in metadata.csv, written atomically: the other
rows stay byte for byte (the label writer's rule: hand edits are never lost).
"""

from __future__ import annotations

import csv
import io
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..data.captions import FILENAME_COLUMNS, PROMPT_COLUMNS, parse_metadata_csv
from ..data.images import IMAGE_EXTENSIONS, list_images
from ..data.textfile import UTF8_BOM, read_text_file
from ..label.writer import write_csv
from ..save.atomic import atomic_write_bytes
from .workspace import Workspace, WorkspaceError

MAX_UPLOAD_BYTES = 200 * 2**20
METADATA = "metadata.csv"


def safe_name(name: str) -> str:
    """A file name from a browser upload, as a plain name (no folders); refused if it has none."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if base in ("", ".", "..") or "\0" in base:
        raise WorkspaceError("workspace.outside", path=name, root="")
    return base


def dataset_folder(ws: Workspace, name: str) -> Path:
    """`datasets/<name>` (created), confined to the workspace."""
    folder = ws.resolve(Path("datasets") / safe_name(name))
    if not folder.is_relative_to(ws.root / "datasets"):
        raise WorkspaceError("workspace.outside", path=name, root=ws.root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_upload(ws: Workspace, folder: Path, filename: str, data: bytes) -> list[str]:
    """Write one uploaded file into `folder`: an image as it is, a zip unpacked (its images only). Returns
    the names written, relative to `folder`."""
    if filename.lower().endswith(".zip"):
        return unpack_zip(ws, folder, data)
    name = safe_name(filename)
    if Path(name).suffix.lower() not in IMAGE_EXTENSIONS | {".txt", ".csv"}:
        raise ValueError(name)
    target = ws.resolve(folder / name)
    atomic_write_bytes(data, target)
    return [name]


def unpack_zip(ws: Workspace, folder: Path, data: bytes) -> list[str]:
    """The images (and .txt/.csv captions) of a zip, into `folder`. Every member is checked first: one
    that is absolute, climbs out with `..`, or is a symbolic link refuses the whole archive."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError("zip") from exc
    plan = []
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise WorkspaceError("workspace.outside", path=name, root=folder)
        member = PurePosixPath(name)
        if member.is_absolute() or ".." in member.parts or (member.parts and ":" in member.parts[0]):
            raise WorkspaceError("workspace.outside", path=name, root=folder)
        target = ws.resolve(folder / member)
        if not target.is_relative_to(folder):
            raise WorkspaceError("workspace.outside", path=name, root=folder)
        if info.is_dir() or member.name.startswith(".") or "__MACOSX" in member.parts:
            continue
        if member.suffix.lower() in IMAGE_EXTENSIONS | {".txt", ".csv"}:
            plan.append((info, target))
    written = []
    for info, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(archive.read(info), target)
        written.append(target.relative_to(folder).as_posix())
    return written


def read_captions(folder: Path) -> dict[str, str]:
    """{image name relative to the folder: caption} from metadata.csv, then sidecar .txt files."""
    captions: dict[str, str] = {}
    csv_path = folder / METADATA
    if csv_path.is_file():
        text = read_text_file(csv_path, "Metadata file").text
        if text.strip():
            captions.update(parse_metadata_csv(text, csv_path))
    for image in list_images(folder):
        name = image.relative_to(folder).as_posix()
        sidecar = image.with_suffix(".txt")
        if name not in captions and sidecar.is_file():
            captions[name] = sidecar.read_text(encoding="utf-8", errors="replace").strip()
    return captions


def images_of(folder: Path) -> list[str]:
    return [p.relative_to(folder).as_posix() for p in list_images(folder)]


def set_caption(folder: Path, image: str, caption: str) -> None:
    """Set one image's caption in metadata.csv: its row is changed in place (other rows, the header, the
    line ends and a BOM stay as they were), or a row is appended when it has none; written atomically."""
    caption = " ".join(caption.split())  # one line: a caption is one row
    csv_path = folder / METADATA
    if not csv_path.is_file():
        write_csv(csv_path, [(image, caption)], overwrite=False)
        return
    existing = read_text_file(csv_path, "Metadata file")
    text = existing.text
    if text.strip():
        parse_metadata_csv(text, csv_path)  # refuses a broken file before we touch it
    lines = text.splitlines(keepends=True)
    header_at, file_col, prompt_col, width = _header(lines)
    for i in range(header_at + 1, len(lines)) if header_at is not None else ():
        row = next(csv.reader([lines[i]]), [])
        if len(row) > file_col and row[file_col].strip() == image:
            ending = lines[i][len(lines[i].rstrip("\r\n")) :]
            cells = (
                row[:prompt_col] + [caption]
                if prompt_col == width - 1
                else _replace(row, prompt_col, caption)
            )
            lines[i] = _row_text(cells) + ending
            bom = "\ufeff" if existing.encoding == UTF8_BOM else ""
            atomic_write_bytes((bom + "".join(lines)).encode("utf-8"), csv_path)
            return
    write_csv(csv_path, [(image, caption)], overwrite=False)


def _replace(row: list[str], col: int, value: str) -> list[str]:
    row = list(row)
    row[col] = value
    return row


def _header(lines: list[str]) -> tuple[int | None, int, int, int]:
    for i, line in enumerate(lines):
        row = next(csv.reader([line]), [])
        if any(cell.strip() for cell in row):
            header = [cell.strip().lower() for cell in row]
            file_col = next(header.index(n) for n in FILENAME_COLUMNS if n in header)
            prompt_col = next(header.index(n) for n in PROMPT_COLUMNS if n in header)
            return i, file_col, prompt_col, len(header)
    return None, 0, 1, 2


def _row_text(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()
