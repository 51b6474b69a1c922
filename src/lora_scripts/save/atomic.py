"""Files are complete or absent: write to a temp file in the same folder, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from safetensors.torch import save_file


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[str]:
    """Yield a temp file name beside `path`; when the block succeeds it is renamed over `path`, otherwise
    removed, so `path` is always either the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes 0600 files (and some writers replace the file); a WebUI/ComfyUI running as another
        # user must read what we write: the mode a plain open() gives (0644 under umask 022), as other tools.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask


def atomic_save_safetensors(tensors: dict, path: Path, metadata: dict[str, str]) -> Path:
    with replacing(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    return path


def atomic_write_text(text: str, path: Path) -> Path:
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def atomic_write_bytes(data: bytes, path: Path) -> Path:
    """Bytes as given (no newline translation): keeps a user's CRLF files byte for byte."""
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return path


def nearest_existing(path: Path) -> Path:
    """The folder that would hold `path`'s first missing part (what must be writable to create it)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def probe_writable(folder: Path) -> None:
    """Raise OSError unless a file can be created where `folder` is (or would be); creates nothing itself."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise NotADirectoryError(f"'{existing}' is a file")
    fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=existing)
    os.close(fd)
    os.unlink(probe)
