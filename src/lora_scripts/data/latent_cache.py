"""Encode each training image with the VAE once (memory or disk) instead of every step.

Each entry keeps, with the latent, the size/crop facts of the pixels it was encoded from
(dataset.size_conditioning: SDXL conditions on them); a disk entry written without them (an older version)
is encoded again rather than trained with facts it does not hold.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..files import replacing
from .dataset import DatasetIndex, ImageItem, load_pixels, size_conditioning

log = logging.getLogger(__name__)
Entry = tuple[torch.Tensor, torch.Tensor]  # latent [c, h, w], size facts [6] (int64)


class LatentCache:
    def __init__(self, encode, folder: Path | None, encoder: str = ""):
        self.encode = encode
        self.folder = folder
        self.encoder = encoder  # what encodes (models/vae.encoder_id): another VAE's entries are not read
        self.memory: dict[Path, Entry] = {}

    def fill(self, index: DatasetIndex) -> None:
        for item in tqdm(index.items, desc="Caching latents", unit="img"):
            self.memory[item.path] = self._load_or_encode(item)

    def get(self, items: list[ImageItem]) -> tuple[torch.Tensor, torch.Tensor]:
        """The items' latents [b, c, h, w] and size facts [b, 6]."""
        entries = [self.memory[i.path] for i in items]
        return torch.stack([e[0] for e in entries]), torch.stack([e[1] for e in entries])

    def _load_or_encode(self, item: ImageItem) -> Entry:
        file = self._file(item)
        if file is not None and file.is_file():
            cached = _read(file)
            if cached is not None:
                return cached
            log.warning(
                "Latent cache entry %s for %s cannot be read or predates size facts; encoding the image "
                "again",
                file,
                item.path,
            )
        latent = self.encode(load_pixels(item, flip=False)[None])[0].float().cpu()
        entry = latent, torch.tensor(size_conditioning(item), dtype=torch.int64)
        if file is not None:
            _write(file, entry)
        return entry

    def _file(self, item: ImageItem) -> Path | None:
        if self.folder is None:
            return None
        stat = item.path.stat()
        key = f"{item.path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{item.bucket}"
        key += f"|{self.encoder}" if self.encoder else ""
        return self.folder / (hashlib.sha1(key.encode()).hexdigest()[:20] + ".safetensors")


def _read(file: Path) -> Entry | None:
    """The cached entry, or None when the file is cut, not ours (a kill, a full disk, a stray file) or
    written before entries kept their size facts."""
    try:
        tensors = load_file(file)
    except Exception:  # safetensors raises its own error type, or OSError, for a damaged file
        return None
    latent, sizes = tensors.get("latent"), tensors.get("size_conditioning")
    if not isinstance(latent, torch.Tensor) or latent.dim() != 3:
        return None
    if not isinstance(sizes, torch.Tensor) or sizes.shape != (6,):
        return None
    return latent, sizes


def _write(file: Path, entry: Entry) -> None:
    with replacing(file) as tmp:
        save_file({"latent": entry[0].contiguous(), "size_conditioning": entry[1].contiguous()}, tmp)
