"""Files and folders are complete or absent: write to a temp beside the target, then rename over it.

The bottom of the stack (beside errors.py), so data/ and models/ use the same mechanism as save/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def replacing_folder(folder: Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `folder`; when the block succeeds it takes `folder`'s place (an old
    one is moved aside, then removed), otherwise it is removed: `folder` is the old one or the complete new
    one (model folders, PEFT adapters, merged models)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        os.chmod(
            tmp, 0o777 & ~current_umask()
        )  # mkdtemp's 0700 would hide it from a server run as another user
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask
