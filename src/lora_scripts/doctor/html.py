"""The doctor's HTML report: one self-contained file with a thumbnail of every flagged image."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from ..data.images import DECODE_ERRORS
from ..errors import OutputError
from ..save.atomic import atomic_write_text
from .images import preview
from .report import DoctorReport

THUMB = 160
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.error{color:#b00020}.warning{color:#8a5a00}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.card{width:180px;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:12px;word-break:break-all}
.card img{max-width:160px;max-height:160px;display:block;margin:auto}
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
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Dataset doctor: "
        f"{escape(str(report.folder))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Dataset doctor</h1><p>{escape(str(report.folder))}: {report.num_images} images, "
        f"{report.num_captioned} captioned (captions from {escape(report.caption_source)}), "
        f"training resolution {report.resolution}.</p>",
        _findings_html(report),
        _flagged_html(report),
        _tags_html(report),
        "</body></html>",
    ]
    return "\n".join(parts)


def _findings_html(report: DoctorReport) -> str:
    if not report.findings:
        return "<h2>No problems found</h2>"
    items = "".join(
        f"<li class='{f.level}'><b>{f.level}</b> ({escape(f.check)}): {escape(f.message)}</li>"
        for f in report.findings
    )
    return f"<h2>Findings</h2><ul>{items}</ul>"


def _flagged_html(report: DoctorReport) -> str:
    flagged = report.flagged
    if not flagged:
        return ""
    cards = []
    for image, checks in sorted(flagged.items()):
        name = escape(image.relative_to(report.folder).as_posix())
        score = report.clutter.get(image)
        extra = f"<br>clutter {score:.2f}" if score is not None else ""
        cards.append(
            f"<div class='card'>{_thumbnail(image)}<b>{name}</b><br>{escape(', '.join(checks))}{extra}</div>"
        )
    return f"<h2>Flagged images ({len(flagged)})</h2><div class='grid'>{''.join(cards)}</div>"


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


def _tags_html(report: DoctorReport) -> str:
    if not report.tag_frequency:
        return ""
    counts = report.tag_frequency.most_common()
    rows = "".join(f"<tr><td>{escape(tag)}</td><td>{count}</td></tr>" for tag, count in counts)
    return f"<h2>Tag frequency</h2><table><tr><th>tag</th><th>images</th></tr>{rows}</table>"
