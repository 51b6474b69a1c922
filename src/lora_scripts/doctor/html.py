"""The doctor's HTML report: one self-contained file a designer reads top to bottom: what must be fixed
before training, what is worth fixing, notes; under each finding the thumbnails of its images with their
captions and numbers, and a line on what each number means."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from ..data.images import DECODE_ERRORS
from ..errors import OutputError
from ..save.atomic import atomic_write_text
from .clutter import CLUTTER_EXPLAINED
from .images import preview
from .report import DoctorReport, Finding, plural

THUMB = 160
CARDS_PER_FINDING = 60  # a finding on hundreds of images shows the first ones; its message names the count
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
section{border-left:6px solid #ccc;padding:0 1em;margin:1.5em 0}
section.error{border-color:#b00020}section.warning{border-color:#d08a00}section.note{border-color:#7a8a99}
.error h2{color:#b00020}.warning h2{color:#8a5a00}.note h2{color:#445}
.finding{margin:1em 0 1.5em}.finding h3{margin:0 0 .2em;font-size:1em}
.explain{color:#555;font-size:13px;margin:.2em 0 .6em}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{width:190px;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:12px;margin:0}
.card img{max-width:160px;max-height:160px;display:block;margin:auto}
.card b{word-break:break-all}.caption{display:block;margin:.3em 0;color:#333}
.caption.none{color:#b00020;font-style:italic}.score{display:block;color:#555}
.missing{height:120px;display:flex;align-items:center;justify-content:center;background:#fee}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
"""


def write_report(report: DoctorReport, path: Path) -> Path:
    try:
        return atomic_write_text(render(report), Path(path))
    except OSError as exc:
        raise OutputError(
            f"Cannot write the doctor report '{path}' ({exc.strerror or exc})",
            "Pass --report with a path in a folder you can write to, or --no-report",
        ) from exc


def render(report: DoctorReport) -> str:
    thumbs: dict[Path, str] = {}  # one encoding per image, however many findings show it
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Dataset doctor: "
        f"{escape(str(report.folder))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Dataset doctor</h1><p>{escape(str(report.folder))}: {report.num_images} images, "
        f"{report.num_captioned} captioned (captions from {escape(report.caption_source)}), "
        f"training resolution {report.resolution}.</p>",
        _overview(report),
        *(_group_html(report, level, title, findings, thumbs) for level, title, findings in report.groups()),
        _legend_html(report),
        _tags_html(report),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _overview(report: DoctorReport) -> str:
    if not report.findings:
        return "<h2>No problems found</h2>"
    counts = ", ".join(f"{title.lower()}: {len(findings)}" for _, title, findings in report.groups())
    return f"<p><b>Start at the top.</b> {escape(counts)}.</p>"


def _group_html(report: DoctorReport, level: str, title: str, findings: list[Finding], thumbs) -> str:
    body = "".join(_finding_html(report, finding, thumbs) for finding in findings)
    return f"<section class='{level}'><h2>{escape(title)} ({len(findings)})</h2>{body}</section>"


def _finding_html(report: DoctorReport, finding: Finding, thumbs: dict[Path, str]) -> str:
    explain = f"<p class='explain'>{escape(finding.explain)}</p>" if finding.explain else ""
    cards = [_card(report, finding, image, thumbs) for image in finding.images[:CARDS_PER_FINDING]]
    rest = len(finding.images) - CARDS_PER_FINDING
    more = f"<p>... and {plural(rest, 'more image')}.</p>" if rest > 0 else ""
    grid = f"<div class='grid'>{''.join(cards)}</div>{more}" if cards else ""
    return (
        f"<div class='finding'><h3>{escape(finding.check)}</h3><p>{escape(finding.message)}</p>"
        f"{explain}{grid}</div>"
    )


def _card(report: DoctorReport, finding: Finding, image: Path, thumbs: dict[Path, str]) -> str:
    if image not in thumbs:
        thumbs[image] = _thumbnail(image)
    name = escape(image.relative_to(report.folder).as_posix())
    caption = report.caption_text(image)
    none = " none" if caption.startswith("(") else ""
    scores = "".join(
        f"<span class='score' title='{escape(_meaning(score, finding))}'>{escape(score)}</span>"
        for score in report.scores(image, finding, clutter=True)
    )
    return (
        f"<figure class='card'>{thumbs[image]}<figcaption><b>{name}</b>"
        f"<span class='caption{none}'>{escape(caption)}</span>{scores}</figcaption></figure>"
    )


def _meaning(score: str, finding: Finding) -> str:
    """The line that explains ``score``, shown when the pointer rests on it (the legend has them all)."""
    return CLUTTER_EXPLAINED if score.startswith("clutter") else finding.explain


def _thumbnail(image: Path) -> str:
    try:
        img = preview(image)
    except DECODE_ERRORS:  # the unreadable images are flagged too: show a placeholder for them
        return "<div class='missing'>cannot be read</div>"
    img.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src='data:image/jpeg;base64,{data}' alt=''>"


def _legend_html(report: DoctorReport) -> str:
    lines = report.explanations()
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<h2>What the numbers mean</h2><ul>{items}</ul>"


def _tags_html(report: DoctorReport) -> str:
    if not report.tag_frequency:
        return ""
    counts = report.tag_frequency.most_common()
    rows = "".join(f"<tr><td>{escape(tag)}</td><td>{count}</td></tr>" for tag, count in counts)
    return f"<h2>Tag frequency</h2><table><tr><th>tag</th><th>images</th></tr>{rows}</table>"
