"""Reading caption text the way people save it: UTF-8 (with or without BOM), or GB18030/GBK, which Excel and
Notepad on Chinese Windows write. One helper for data/, label/ and the doctor; we always write UTF-8."""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

log = logging.getLogger(__name__)

UTF8 = "UTF-8"
UTF8_BOM = "UTF-8 with BOM"
GB18030 = "GB18030"
DESCRIBED = {GB18030: "GB18030 (Chinese Windows encoding)"}


@dataclass(frozen=True)
class TextFile:
    text: str  # without a BOM; line ends as they are in the file
    encoding: str  # UTF8, UTF8_BOM or GB18030

    @property
    def is_utf8(self) -> bool:
        return self.encoding in (UTF8, UTF8_BOM)


def decode_text(data: bytes) -> TextFile | None:
    """UTF-8 first (a BOM is dropped), else GB18030 (a superset of GBK) when every byte decodes, nothing is a
    control or private-use character, and most characters are common simplified Chinese (GB2312): Western
    Windows text ("crème" in cp1252) often decodes as rare GBK characters and must not pass for Chinese.
    None when neither fits."""
    try:
        text = data.decode("utf-8")
        if text.startswith("\ufeff"):
            return TextFile(text[1:], UTF8_BOM)
        return TextFile(text, UTF8)
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None
    wide = [ch for ch in text if ord(ch) > 127]
    if any(_odd(ch) for ch in text) or sum(map(_common, wide)) < COMMON_SHARE * len(wide):
        return None
    return TextFile(text, GB18030)


COMMON_SHARE = 0.5  # of the non-ASCII characters, at least this many in GB2312


def _odd(ch: str) -> bool:
    return ch not in "\t\r\n" and unicodedata.category(ch) in ("Cc", "Co", "Cs")


def _common(ch: str) -> bool:
    try:
        ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def read_text_file(path: Path, what: str, hint: str = "Save it as UTF-8 and try again") -> TextFile:
    """``path`` decoded by ``decode_text``; ``what`` names it in errors ("Caption file")."""
    if path.is_dir():
        raise DataError(f"{what} '{path}' is a folder, not a file", hint)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{what} '{path}' does not exist", "Check the path") from exc
    except OSError as exc:
        raise DataError(f"{what} '{path}' cannot be read ({exc.strerror})", "Check the path") from exc
    decoded = decode_text(data)
    if decoded is None:
        raise DataError(f"{what} '{path}' is neither UTF-8 nor GB18030 (Chinese Windows) text", hint)
    return decoded


@dataclass
class EncodingNotes:
    """Which files were not UTF-8, counted per kind of file, for one line per kind instead of one per file."""

    counts: Counter = field(default_factory=Counter)  # (kind, encoding) -> files
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # the first file's name

    def add(self, kind: str, path: Path, decoded: TextFile) -> None:
        if decoded.is_utf8:
            return
        self.counts[kind, decoded.encoding] += 1
        self.names.setdefault((kind, decoded.encoding), path.name)

    def lines(self) -> list[str]:
        """E.g. "Read 12 caption files as GB18030 (Chinese Windows encoding)"; one file is named."""
        out = []
        for (kind, encoding), n in self.counts.items():
            files = f"'{self.names[kind, encoding]}'" if n == 1 else f"{n} {kind}s"
            out.append(f"Read {files} as {DESCRIBED.get(encoding, encoding)}")
        return out

    def log(self) -> None:
        for line in self.lines():
            log.info("%s", line)
