"""Encode each training image with the VAE once (memory or disk) instead of every step."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..files import replacing
from .dataset import DatasetIndex, ImageItem, load_pixels

log = logging.getLogger(__name__)


class LatentCache:
    def __init__(self, encode, folder: Path | None):
        self.encode = encode
        self.folder = folder
        self.memory: dict[Path, torch.Tensor] = {}

    def fill(self, index: DatasetIndex) -> None:
        for item in tqdm(index.items, desc="Caching latents", unit="img"):
            self.memory[item.path] = self._load_or_encode(item)

    def get(self, items: list[ImageItem]) -> torch.Tensor:
        return torch.stack([self.memory[i.path] for i in items])

    def _load_or_encode(self, item: ImageItem) -> torch.Tensor:
        file = self._file(item)
        if file is not None and file.is_file():
            cached = _read(file)
            if cached is not None:
                return cached
            log.warning(
                "Latent cache entry %s for %s cannot be read; encoding the image again", file, item.path
            )
        latent = self.encode(load_pixels(item, flip=False)[None])[0].float().cpu()
        if file is not None:
            _write(file, latent)
        return latent

    def _file(self, item: ImageItem) -> Path | None:
        if self.folder is None:
            return None
        stat = item.path.stat()
        key = f"{item.path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{item.bucket}"
        return self.folder / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".safetensors")


def _read(file: Path) -> torch.Tensor | None:
    """The cached latent, or None when the file is cut or not ours (a kill, a full disk, a stray file)."""
    try:
        latent = load_file(file).get("latent")
    except Exception:  # safetensors raises its own error type, or OSError, for a damaged file
        return None
    return latent if isinstance(latent, torch.Tensor) and latent.dim() == 3 else None


def _write(file: Path, latent: torch.Tensor) -> None:
    with replacing(file) as tmp:
        save_file({"latent": latent.contiguous()}, tmp)
