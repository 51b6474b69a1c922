"""Where a job's results go: a local folder, or an fsspec URI (s3://bucket/prefix, gs://..., memory://...).

A local folder (also `file://...`) is written as always: temp file + rename, index parts appended and fsynced.
Object stores have no rename and no append, but one PUT is whole or absent: every file is written there in
one `pipe_file`, and the index parts become one new object per batch (ledger.py), so nothing is rewritten.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from ..errors import ConfigError, OutputError
from ..progress import PROGRESS_ENV, ProgressLog
from ..save.atomic import atomic_write_bytes, atomic_write_text

LOCAL = ("file", "local")
# A URI is `scheme://...`: a scheme of two or more characters (RFC 3986's letters, digits, + - .; fsspec's
# chained `a::b://` kept whole) right before `://`. Anything else is a path: `data:x` and `run:2024` are
# folder names (fsspec's split_protocol would read `data:` as its data-URI protocol), `C:\out` and `C:/out`
# are Windows drives, `out/a://b` a folder under out.
URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+(?:::[A-Za-z][A-Za-z0-9+.-]+)*)://(.*)", re.DOTALL)


def split_uri(text: str) -> tuple[str | None, str]:
    """(protocol, path) of an output_dir; a local path (also `file://...`) has protocol None and is never
    given to fsspec. The one place that tells a URI from a folder."""
    match = URI.fullmatch(str(text))
    if match is None:
        return None, str(text)
    protocol, path = match.groups()
    return (None if protocol in LOCAL else protocol), path


def filesystem_class(url: str, protocol: str):
    """fsspec's class for `protocol`; a missing backend package or an unknown protocol is one sentence."""
    import fsspec
    from fsspec.registry import known_implementations

    try:
        return fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        module = known_implementations.get(protocol, {}).get("class", "").split(".")[0]
        package = getattr(exc.__cause__, "name", None) or module
        raise ConfigError(
            f"output_dir '{url}' needs the package '{package}', which is not installed",
            f"Install it with: pip install {package}",
        ) from exc
    except ValueError as exc:
        raise ConfigError(
            f"output_dir '{url}' has an unknown protocol '{protocol}://'",
            "Use a folder, or a URI such as s3://bucket/prefix (fsspec's protocols)",
        ) from exc


def open_output(output_dir: str, storage_options: dict | None = None) -> LocalOutput | ObjectOutput:
    protocol, path = split_uri(output_dir)
    if protocol is None:
        return LocalOutput(Path(path))
    cls = filesystem_class(output_dir, protocol)
    try:
        fs = cls(**(storage_options or {}))
    except TypeError as exc:
        raise ConfigError(
            f"`storage_options` do not suit '{protocol}://' ({exc})", "Check their names"
        ) from exc
    return ObjectOutput(fs, output_dir)


class LocalOutput:
    """A folder on this machine (or a mounted share): temp file + rename, as every file the project writes."""

    remote = False

    def __init__(self, root: Path):
        self.root = root
        self.name = root.name

    def __str__(self) -> str:
        return str(self.root)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def read_text(self, rel: str) -> str | None:
        try:
            return (self.root / rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, rel: str, text: str) -> None:
        atomic_write_text(text, self.root / rel)

    def write_bytes(self, rel: str, data: bytes) -> None:
        try:
            atomic_write_bytes(data, self.root / rel)
        except OSError as exc:
            raise OutputError(
                f"Could not write '{self.root / rel}': {exc.strerror or exc}", "Check the disk and folder"
            ) from exc

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def move_aside(self, names: tuple[str, ...]) -> None:
        aside = self.root / time.strftime("replaced-%Y%m%d-%H%M%S")
        aside.mkdir()
        for name in names:
            if (self.root / name).exists():
                shutil.move(str(self.root / name), str(aside / name))

    def check_writable(self) -> None:
        from ..generate.images import check_writable

        check_writable(self.root)

    def remove_stale_temps(self) -> None:
        """Temp files of images a kill -9 cut off (`.<name>.png.<random>.tmp`); only while no other process
        of the job can be writing one."""
        for path in (self.root / "images").rglob(".*.png.*.tmp"):
            path.unlink(missing_ok=True)

    def progress(self) -> ProgressLog:
        return ProgressLog(self.root)


class ObjectOutput:
    """An fsspec location: each file one whole `pipe_file` (an object store's PUT: complete or absent)."""

    remote = True

    def __init__(self, fs, url: str):
        self.fs, self.url = fs, url.rstrip("/")
        self.root = fs._strip_protocol(url).rstrip("/")
        self.name = self.root.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    @contextlib.contextmanager
    def _io(self, what: str):
        try:
            yield
        except (ConfigError, OutputError):
            raise
        except Exception as exc:  # s3fs, gcsfs ... raise their own kinds: the sentence says what was done
            raise OutputError(
                f"Could not {what} at '{self.url}' ({type(exc).__name__}: {exc})",
                "Check the bucket, your credentials and `storage_options` in the job file",
            ) from exc

    def exists(self, rel: str) -> bool:
        with self._io(f"read '{rel}'"):
            self.fs.invalidate_cache()  # another process (rank, Ray worker) may have written since
            return self.fs.exists(self.path(rel))

    def read_text(self, rel: str) -> str | None:
        with self._io(f"read '{rel}'"):
            try:
                return self.fs.cat_file(self.path(rel)).decode("utf-8")
            except FileNotFoundError:
                return None

    def read_many(self, rels: list[str]) -> dict[str, str]:
        with self._io("read the index parts"):
            got = self.fs.cat([self.path(r) for r in rels]) if rels else {}
        return {rel: got[self.path(rel)].decode("utf-8") for rel in rels}

    def glob(self, pattern: str) -> list[str]:
        """Paths (relative to the root) that match `pattern`, as they are now."""
        with self._io(f"list '{pattern}'"):
            self.fs.invalidate_cache()
            found = self.fs.glob(f"{glob.escape(self.root)}/{pattern}")  # the prefix is a name, not a pattern
        prefix = self.root + "/"
        return sorted(p[len(prefix) :] for p in found if p.startswith(prefix))

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self.path(rel)
        with self._io(f"write '{rel}'"):
            try:
                self.fs.pipe_file(path, data)
            except FileNotFoundError:
                if self.fs.async_impl:  # s3fs, gcsfs, adlfs: no bucket (makedirs would create one)
                    raise
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # real folders (sftp ...)
                self.fs.pipe_file(path, data)

    def remove(self, rels: list[str]) -> None:
        if rels:
            with self._io("remove the merged index parts"):
                self.fs.rm([self.path(r) for r in rels])

    def start(self) -> None:
        """Nothing: objects need no folders (a filesystem that does gets them on the first write)."""

    def move_aside(self, names: tuple[str, ...]) -> None:
        """--new: copy every object under `names` to replaced-<time>/, then remove the originals (an object
        store cannot rename; a crash in between leaves both copies, never neither)."""
        aside = time.strftime("replaced-%Y%m%d-%H%M%S")
        with self._io("move the old results aside"):
            self.fs.invalidate_cache()
            sources = [p for name in names for p in self.fs.find(self.path(name))]
            prefix = self.root + "/"
            self.fs.copy(sources, [f"{prefix}{aside}/{p[len(prefix) :]}" for p in sources])
            self.fs.rm(sources)

    def check_writable(self) -> None:
        """Fail before any work when the location cannot be written (no bucket, no credentials)."""
        probe = f".write-test-{secrets.token_hex(4)}"
        self.write_bytes(probe, b"")
        with self._io("remove a test file"):
            self.fs.rm(self.path(probe))

    def remove_stale_temps(self) -> None:
        """Nothing: a PUT leaves no temp file."""

    def progress(self) -> ProgressLog:
        """Progress events need appending: to the local file LORA_SCRIPTS_PROGRESS names, else none."""
        path = os.environ.get(PROGRESS_ENV)
        return ProgressLog(Path("."), enabled=bool(path), path=Path(path) if path else None)
