"""The one folder the UI reads and writes: every path a user types or a request names is resolved here, and
anything that lands outside it (`..`, an absolute path elsewhere, a symlink pointing out, a NUL byte, another
drive) is refused with a sentence in the user's language.

The check is made on the fully resolved path (symlinks followed), so a link inside the workspace that points
at /etc/passwd is refused like the path itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from ..errors import LoraScriptsError
from .i18n import t

AREAS = ("datasets", "configs", "loras", "outputs")
_CONFIG_SUFFIXES = (".yaml", ".yml")
_LORA_SUFFIXES = (".safetensors",)


class WorkspaceError(LoraScriptsError):
    """A path outside the workspace (or not a path at all). ``str()`` is English; ``text(lang)`` either."""

    def __init__(self, key: str, **fields: object):
        self.key, self.fields = key, fields
        what, _, hint = t(key, "en", **fields).rpartition(". ")
        super().__init__(what, hint or None)

    def text(self, lang: str) -> str:
        return t(self.key, lang, **self.fields)


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __init__(self, root: str | Path):
        root = Path(root).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError("workspace.not_folder", root=root)
        object.__setattr__(self, "root", root)

    def create(self) -> Workspace:
        """Make the workspace and its areas (datasets, configs, loras, outputs)."""
        for area in AREAS:
            (self.root / area).mkdir(parents=True, exist_ok=True)
        return self

    def resolve(self, user_path: str | os.PathLike) -> Path:
        """The absolute, symlink-free path of `user_path` (relative to the workspace, or absolute), or a
        WorkspaceError when it is not inside the workspace."""
        text = os.fspath(user_path)
        if "\0" in text:
            raise WorkspaceError("workspace.nul", path=text.replace("\0", "\\0"))
        if not text.strip():
            raise WorkspaceError("workspace.empty")
        if os.sep == "/":
            # On POSIX a backslash is a file-name character, but a user typing `..\..\x` or `C:\x` means a
            # Windows path: read it as one, and refuse drives and shares (they cannot be in this workspace).
            if PureWindowsPath(text).drive:
                raise WorkspaceError("workspace.drive", path=text)
            text = text.replace("\\", "/")
        path = Path(text)
        if not path.is_absolute():
            if path.drive:  # Windows `C:x`: relative to another drive's current folder
                raise WorkspaceError("workspace.drive", path=text)
            path = self.root / path
        resolved = path.resolve()  # follows every symlink that exists, collapses `..`
        if not resolved.is_relative_to(self.root):
            raise WorkspaceError("workspace.outside", path=os.fspath(user_path), root=self.root)
        return resolved

    def relative(self, path: str | os.PathLike) -> str:
        """`path` (confined as by `resolve`) relative to the workspace, with / separators, for pages."""
        return self.resolve(path).relative_to(self.root).as_posix()

    def listing(self) -> dict[str, list[str]]:
        """What each area holds, as workspace-relative paths: dataset and output folders, config (.yaml)
        and LoRA (.safetensors) files. Entries that resolve outside the workspace are left out."""
        found: dict[str, list[str]] = {}
        for area in AREAS:
            folder = self.root / area
            entries = []
            if folder.is_dir():
                for entry in sorted(folder.rglob("*") if area in ("configs", "loras") else folder.iterdir()):
                    if entry.name.startswith(".") or not self._inside(entry):
                        continue
                    if area in ("datasets", "outputs"):
                        keep = entry.is_dir()
                    else:
                        suffixes = _CONFIG_SUFFIXES if area == "configs" else _LORA_SUFFIXES
                        keep = entry.is_file() and entry.suffix.lower() in suffixes
                    if keep:
                        entries.append(entry.relative_to(self.root).as_posix())
            found[area] = entries
        return found

    def _inside(self, path: Path) -> bool:
        try:
            self.resolve(path)
        except WorkspaceError:
            return False
        return True
