"""One training per output folder: a lock file naming its owner, stale locks noticed, stale temp removed.

Two runs on one output_dir both said "LoRA saved" while the file held only the last one; the second run must
refuse at once. A lock file created with O_EXCL is the portable way (no library does this for a folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError
from .state import STATE_DIR, sweep

log = logging.getLogger(__name__)
LOCK_NAME = ".lora-scripts.lock"


@contextlib.contextmanager
def output_lock(folder: Path) -> Iterator[Path]:
    """Hold `folder/.lora-scripts.lock` for the run; a lock whose process is gone is taken over."""
    path = folder / LOCK_NAME
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _read(path)
            if _alive(other):
                raise OutputError(
                    f"Another training (process {other.get('pid')} on {other.get('host')}, started "
                    f"{other.get('started')}) is writing to '{folder}'",
                    "Wait for it to finish, stop it, or choose another output_dir",
                ) from None
            log.warning("Removing a stale lock in %s (process %s is gone)", folder, other.get("pid"))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(owner, handle)
        break
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            if _read(path).get("pid") == owner["pid"]:
                path.unlink()


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _alive(owner: dict) -> bool:
    """True unless the owner is a process on this machine that no longer exists (or the lock is unreadable
    garbage, e.g. half-written by a kill: then it is stale too)."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if owner.get("host") != socket.gethostname():
        return True  # another machine's run on a shared folder: we cannot tell, so respect it
    return pid_exists(pid)


def pid_exists(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(folder: Path) -> None:
    """Temp files a killed run left (LoRA, report, sample and cache temp files; unfinished states, by the
    state module's own sweep): ours alone, since we hold the lock. Complete files are never touched."""
    found = [
        p for sub in ("", "samples", "latent_cache") for p in (folder / sub).glob(".*.tmp") if p.is_file()
    ]
    for path in found:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if (folder / STATE_DIR).is_dir():
        sweep(folder / STATE_DIR)
    if found:
        log.info("Removed %d temp file(s) left by an interrupted run in %s", len(found), folder)
