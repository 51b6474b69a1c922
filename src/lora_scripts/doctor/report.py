"""The doctor's findings: sentences for the terminal and the trainer, thumbnails for the HTML report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

TOP_TAGS = 15


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (training would fail or learn garbage) or "warning" (worth a look)
    check: str  # short title shown next to thumbnails, e.g. "near-duplicate"
    message: str  # one sentence: what, which files, what to do
    images: tuple[Path, ...] = ()


@dataclass
class DoctorReport:
    folder: Path
    resolution: int
    num_images: int = 0
    num_captioned: int = 0
    findings: list[Finding] = field(default_factory=list)
    tag_frequency: Counter = field(default_factory=Counter)
    clutter: dict[Path, float] = field(default_factory=dict)
    caption_source: str = ""
    notes: list[str] = field(default_factory=list)  # facts worth a line, e.g. captions read as GB18030

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "warning"]

    @property
    def flagged(self) -> dict[Path, list[str]]:
        """Every image some check points at, with the checks' titles."""
        flagged: dict[Path, list[str]] = {}
        for finding in self.findings:
            for image in finding.images:
                flagged.setdefault(image, []).append(finding.check)
        return flagged

    def summary(self) -> str:
        lines = [
            f"Dataset doctor: '{self.folder}': {self.num_images} images, {self.num_captioned} captioned "
            f"(captions from {self.caption_source}), training resolution {self.resolution}",
        ]
        lines += self.notes
        lines += [f"ERROR: {message}" for message in self.errors]
        lines += [f"warning: {message}" for message in self.warnings]
        if not self.findings:
            lines.append("No problems found.")
        if self.tag_frequency:
            top = ", ".join(f"{tag} ({n})" for tag, n in self.tag_frequency.most_common(TOP_TAGS))
            lines.append(f"Most frequent tags: {top}")
        return "\n".join(lines)

    def raise_for_errors(self, hint: str = "Fix them and run `lora-scripts doctor` again") -> None:
        """One DataError naming the first error when there is any (the trainer stops on it)."""
        errors = self.errors
        if not errors:
            return
        more = f" (and {plural(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
        raise DataError(f"The dataset doctor found a problem in '{self.folder}': {errors[0]}{more}", hint)

    def write_html(self, path: Path) -> Path:
        from .html import write_report

        return write_report(self, path)
