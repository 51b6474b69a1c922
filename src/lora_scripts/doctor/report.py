"""The doctor's findings: sentences for the terminal and the trainer, thumbnails for the HTML report.

Findings come in three groups, in the order a designer works through them: errors (must fix before training:
training stops on them), warnings (worth fixing: the LoRA trains, but learns worse), notes (facts, e.g. files
read as GB18030).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .clutter import CLUTTER_EXPLAINED, describe_clutter

TOP_TAGS = 15
SHOWN_IMAGES = 3  # images listed with their captions under each finding in the terminal
SHOWN_CHARS = 100  # of a caption in the terminal (the HTML report shows it whole)
GROUPS = {"error": "Must fix before training", "warning": "Worth fixing", "note": "Notes"}
PREFIX = {"error": "ERROR", "warning": "warning", "note": "note"}


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" (training would fail or learn garbage), "warning" (worth a look) or "note" (a fact)
    check: str  # short title shown next to thumbnails, e.g. "near-duplicate"
    message: str  # one sentence: what, which files, what to do
    images: tuple[Path, ...] = ()
    explain: str = ""  # one line on what the numbers in ``details`` (or the message) mean, and what is high
    details: tuple[tuple[Path, str], ...] = ()  # a number per image, e.g. (path, "92 tokens")
    # what the message says, as data: the web UI writes the sentence in the page's language from
    # doctor/text_zh.py by `code` (default: `check`) with these parameters (counts, file names...)
    params: dict = field(default_factory=dict, compare=False)
    code: str = ""

    @property
    def kind(self) -> str:
        return self.code or self.check

    def detail(self, image: Path) -> str:
        return dict(self.details).get(image, "")


class HasFindings:
    """The errors and warnings of a report's `findings` (image and chat doctors alike)."""

    findings: list[Finding]

    @property
    def errors(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "warning"]


@dataclass
class DoctorReport(HasFindings):
    folder: Path
    resolution: int
    num_images: int = 0
    num_captioned: int = 0
    findings: list[Finding] = field(default_factory=list)
    tag_frequency: Counter = field(default_factory=Counter)
    clutter: dict[Path, float] = field(default_factory=dict)
    caption_source: str = ""
    captions: dict[Path, str] = field(default_factory=dict)  # the caption each image trains with

    @property
    def notes(self) -> list[str]:
        return [f.message for f in self.findings if f.level == "note"]

    def groups(self) -> list[tuple[str, str, list[Finding]]]:
        """(level, heading, findings) for each level that has findings, errors first."""
        grouped = [
            (level, title, [f for f in self.findings if f.level == level]) for level, title in GROUPS.items()
        ]
        return [group for group in grouped if group[2]]

    @property
    def flagged(self) -> dict[Path, list[str]]:
        """Every image some check points at, with the checks' titles."""
        flagged: dict[Path, list[str]] = {}
        for finding in self.findings:
            for image in finding.images:
                flagged.setdefault(image, []).append(finding.check)
        return flagged

    def caption_missing(self, image: Path) -> str | None:
        """Why ``image`` has no caption to show: "no caption" (none found), "empty caption", or None."""
        if image not in self.captions:
            return "no caption"
        return None if self.captions[image].strip() else "empty caption"

    def caption_text(self, image: Path, limit: int | None = None) -> str:
        """The caption in quotes (cut at ``limit`` characters), or what stands for it: (no caption),
        (empty caption)."""
        missing = self.caption_missing(image)
        if missing:
            return f"({missing})"
        text = self.captions[image]
        if limit is not None and len(text) > limit:
            text = text[:limit].rstrip() + "..."
        return f'"{text}"'

    def scores(self, image: Path, finding: Finding, clutter: bool = False) -> list[str]:
        """The numbers shown for ``image``: the finding's own, and with ``clutter`` its clutter score in words
        (the HTML cards show it for every image; its meaning is in ``explanations``)."""
        shown = [finding.detail(image)] if finding.detail(image) else []
        if clutter and image in self.clutter and not any(s.startswith("clutter") for s in shown):
            shown.append(describe_clutter(self.clutter[image]))
        return shown

    def explanations(self) -> list[str]:
        """One line per kind of number the report shows, each once: what it means and what is high."""
        lines = [CLUTTER_EXPLAINED] if any(image in self.clutter for image in self.flagged) else []
        for finding in self.findings:
            if finding.explain and finding.explain not in lines:
                lines.append(finding.explain)
        return lines

    def summary(self) -> str:
        lines = [
            f"Dataset doctor: '{self.folder}': {self.num_images} images, {self.num_captioned} captioned "
            f"(captions from {self.caption_source}), training resolution {self.resolution}",
        ]
        for level, title, findings in self.groups():
            lines.append(f"{title} ({len(findings)}):")
            for finding in findings:
                lines.append(f"  {PREFIX[level]}: {finding.message}")
                if finding.explain:
                    lines.append(f"    {finding.explain}")
                lines += [self._image_line(image, finding) for image in finding.images[:SHOWN_IMAGES]]
                if len(finding.images) > SHOWN_IMAGES:
                    lines.append(f"    ... and {len(finding.images) - SHOWN_IMAGES} more in the HTML report")
        if not self.findings:
            lines.append("No problems found.")
        if self.tag_frequency:
            top = ", ".join(f"{tag} ({n})" for tag, n in self.tag_frequency.most_common(TOP_TAGS))
            lines.append(f"Most frequent tags: {top}")
        return "\n".join(lines)

    def _image_line(self, image: Path, finding: Finding) -> str:
        scores = "".join(f"  [{score}]" for score in self.scores(image, finding))
        caption = self.caption_text(image, SHOWN_CHARS)
        return f"    {image.relative_to(self.folder).as_posix()}{scores}  {caption}"

    def raise_for_errors(self, hint: str = "Fix them and run `lora-scripts doctor` again") -> None:
        """One DataError naming the first error when there is any (the trainer stops on it)."""
        errors = self.errors
        if not errors:
            return
        more = f" (and {plural(len(errors) - 1, 'more error')})" if len(errors) > 1 else ""
        raise DataError(f"The dataset doctor found a problem in '{self.folder}': {errors[0]}{more}", hint)

    def write_json(self, path: Path) -> Path:
        """The findings as data (the web UI shows them on the thumbnails they concern): each finding's level,
        check, code and parameters, message and its images relative to the folder, with their numbers."""
        import json

        from ..save.atomic import atomic_write_text

        def rel(image: Path) -> str:
            inside = image.is_relative_to(self.folder)
            return image.relative_to(self.folder).as_posix() if inside else str(image)

        findings = [
            {
                "level": f.level,
                "check": f.check,
                "code": f.kind,
                "params": f.params,
                "message": f.message,
                "images": [rel(i) for i in f.images],
                "details": {rel(i): d for i, d in f.details},
            }
            for f in self.findings
        ]
        data = {"folder": str(self.folder), "num_images": self.num_images, "findings": findings}
        return atomic_write_text(json.dumps(data, ensure_ascii=False, indent=1), path)

    def write_html(self, path: Path, lang: str = "en") -> Path:
        from .html import write_report

        return write_report(self, path, lang)
