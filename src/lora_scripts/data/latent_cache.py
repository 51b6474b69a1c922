"""Encode each training image with the VAE once (memory or disk) instead of every step."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

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
            return load_file(file)["latent"]
        latent = self.encode(load_pixels(item, flip=False)[None])[0].float().cpu()
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            save_file({"latent": latent.contiguous()}, file)
        return latent

    def _file(self, item: ImageItem) -> Path | None:
        if self.folder is None:
            return None
        stat = item.path.stat()
        key = f"{item.path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{item.bucket}"
        return self.folder / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".safetensors")
