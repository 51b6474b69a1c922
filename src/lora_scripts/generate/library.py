"""A LoRA folder like WebUI's `models/Lora`: find a file by its file name or by its `ss_output_name`."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from safetensors import safe_open

from ..errors import ConfigError


class LoraLibrary:
    """Every `.safetensors` under a folder (subfolders too), by name."""

    def __init__(self, folder: Path | str | None):
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and not self.folder.is_dir():
            raise ConfigError(
                f"The LoRA folder '{self.folder}' does not exist",
                "Point --lora-dir at the folder that holds your .safetensors LoRA files",
            )
        files = sorted(self.folder.rglob("*.safetensors")) if self.folder else []
        self.by_stem = _group({f: [f.stem] for f in files})
        self.by_output_name = _group({f: [name] for f in files if (name := _output_name(f))})

    def names(self) -> list[str]:
        return sorted(set(self.by_stem) | set(self.by_output_name))

    def find(self, name: str) -> Path:
        """The file for `<lora:name>`: a file name wins over an `ss_output_name`; ambiguity is an error."""
        if self.folder is None:
            raise ConfigError(
                f"The prompt uses <lora:{name}> but no LoRA folder was given",
                "Add --lora-dir with the folder that holds your LoRA files",
            )
        for table in (self.by_stem, self.by_output_name):
            found = table.get(name)
            if found and len(found) > 1:
                listed = ", ".join(str(f) for f in found)
                raise ConfigError(
                    f"The LoRA name '{name}' fits several files: {listed}",
                    "Rename one of them, or use its file name in the tag",
                )
            if found:
                return found[0]
        raise ConfigError(f"No LoRA named '{name}' in '{self.folder}'", self._hint(name))

    def _hint(self, name: str) -> str:
        names = self.names()
        if not names:
            return "The folder has no .safetensors files; copy your LoRA there"
        close = difflib.get_close_matches(name, names, n=1)
        maybe = f"Did you mean '{close[0]}'? " if close else ""
        shown = ", ".join(names[:30]) + (f" (+{len(names) - 30} more)" if len(names) > 30 else "")
        return f"{maybe}LoRAs there: {shown}"


def _group(names: dict[Path, list[str]]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path, keys in names.items():
        for key in keys:
            out.setdefault(key, []).append(path)
    return out


def _output_name(path: Path) -> str | None:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("ss_output_name") or None
    except Exception:  # an unreadable file is reported when a prompt uses it
        return None


def short_hash(path: Path) -> str:
    """WebUI's `Lora hashes` value: the first 12 hex digits of the sha256 of the tensor bytes (the
    "addnet" hash, same as kohya's `sshs_model_hash`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        header = int.from_bytes(handle.read(8), "little")
        handle.seek(8 + header)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
