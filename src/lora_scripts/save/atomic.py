"""Atomic writers for every file the project writes (the mechanism: lora_scripts/files.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from ..files import current_umask, replacing

__all__ = ["current_umask", "replacing"]


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
