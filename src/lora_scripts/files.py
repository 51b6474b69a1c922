"""Files are complete or absent: write to a temp file in the same folder, then rename over the target.

The bottom of the stack (beside errors.py), so data/ and models/ use the same mechanism as save/.
"""

from __future__ import annotations

import contextlib
import os
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


def current_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it and put it back
    os.umask(mask)
    return mask
