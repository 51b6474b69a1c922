"""The doctor's HTML report: one self-contained file a designer reads top to bottom: what must be fixed
before training, what is worth fixing, notes; under each finding the thumbnails of its images with their
captions and numbers, and a line on what each number means."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ..data.images import DECODE_ERRORS
from ..errors import ConfigError, OutputError
from ..language import normalise_lang
from ..save.atomic import atomic_write_text
from .clutter import CLUTTER_EXPLAINED
from .images import preview
from .report import GROUPS, DoctorReport, Finding
from .text_zh import CHECK_ZH, EXPLAINED_ZH, REPORT_ZH, finding_zh, score_zh

THUMB = 160
REPORT_EN: dict[str, str] = {
    "title": "Dataset doctor",
    "summary": "{folder}: {images} images, {captioned} captioned (captions from {source}), "
    "training resolution {resolution}.",
    "none": "No problems found",
    "start": "Start at the top.",
    **GROUPS,
    "more": "... and {n} more.",
    "unreadable": "cannot be read",
    "legend": "What the numbers mean",
    "tags": "Tag frequency",
    "tag": "tag",
    "count": "images",
    "no caption": "(no caption)",
    "empty caption": "(empty caption)",
}
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


def report_lang(lang: str) -> str:
    """`--lang` as given ('zh', 'zh-CN', 'zh_CN.UTF-8', 'en') -> 'zh' or 'en'; anything else is refused."""
    try:
        return normalise_lang(lang)
    except ValueError:
        hint = "Use --lang en or --lang zh (简体中文)"
        raise ConfigError(f"--lang {lang} is not a report language", hint) from None


@dataclass(frozen=True)
class _Text:
    """The report's words in one language: its own (REPORT_EN/REPORT_ZH) and the findings' (by code)."""

    zh: bool

    def __call__(self, key: str, **fields) -> str:
        return (REPORT_ZH if self.zh else REPORT_EN)[key].format(**fields)

    def title(self, finding: Finding) -> str:
        return CHECK_ZH.get(finding.check, finding.check) if self.zh else finding.check

    def message(self, finding: Finding) -> str:
        return finding_zh(finding.kind, finding.params, finding.message) if self.zh else finding.message

    def explain(self, finding: Finding) -> str:
        if self.zh and finding.kind in EXPLAINED_ZH:
            return EXPLAINED_ZH[finding.kind].format(**finding.params)
        return finding.explain

    def source(self, source: str) -> str:
        """Where the captions came from: ".txt files" or the metadata file's name."""
        return source.replace(" files", " 文件") if self.zh else source

    def clutter(self) -> str:
        return EXPLAINED_ZH["cluttered"] if self.zh else CLUTTER_EXPLAINED

    def score(self, score: str) -> str:
        return score_zh(score) if self.zh else score

    def caption(self, report: DoctorReport, image: Path) -> str:
        """The caption in quotes, or in this language what stands for a missing or empty one."""
        missing = report.caption_missing(image)
        return self(missing) if missing else report.caption_text(image)


def write_report(report: DoctorReport, path: Path, lang: str = "en") -> Path:
    try:
        return atomic_write_text(render(report, lang), Path(path))
    except OSError as exc:
        raise OutputError(
            f"Cannot write the doctor report '{path}' ({exc.strerror or exc})",
            "Pass --report with a path in a folder you can write to, or --no-report",
        ) from exc


def render(report: DoctorReport, lang: str = "en") -> str:
    """The report in English or Chinese (`lang` "zh": every heading, finding and number in Chinese)."""
    text = _Text(zh=lang == "zh")
    thumbs: dict[Path, str] = {}  # one encoding per image, however many findings show it
    folder = escape(str(report.folder))
    summary = text(
        "summary",
        folder=folder,
        images=report.num_images,
        captioned=report.num_captioned,
        source=escape(text.source(report.caption_source)),
        resolution=report.resolution,
    )
    parts = [
        f"<!doctype html><html lang='{'zh-CN' if text.zh else 'en'}'><head><meta charset='utf-8'>"
        f"<title>{text('title')}: {folder}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{text('title')}</h1><p>{summary}</p>",
        _overview(report, text),
        *(_group_html(report, level, findings, thumbs, text) for level, _, findings in report.groups()),
        _legend_html(report, text),
        _tags_html(report, text),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _overview(report: DoctorReport, text: _Text) -> str:
    if not report.findings:
        return f"<h2>{text('none')}</h2>"
    if text.zh:
        counts = "，".join(f"{text(level)} {len(f)} 项" for level, _, f in report.groups()) + "。"
    else:
        counts = ", ".join(f"{text(level).lower()}: {len(f)}" for level, _, f in report.groups()) + "."
    return f"<p><b>{text('start')}</b> {escape(counts)}</p>"


def _group_html(report: DoctorReport, level: str, findings: list[Finding], thumbs, text: _Text) -> str:
    body = "".join(_finding_html(report, finding, thumbs, text) for finding in findings)
    return f"<section class='{level}'><h2>{escape(text(level))} ({len(findings)})</h2>{body}</section>"


def _finding_html(report: DoctorReport, finding: Finding, thumbs: dict[Path, str], text: _Text) -> str:
    explain = f"<p class='explain'>{escape(text.explain(finding))}</p>" if finding.explain else ""
    cards = [_card(report, finding, image, thumbs, text) for image in finding.images[:CARDS_PER_FINDING]]
    rest = len(finding.images) - CARDS_PER_FINDING
    more = f"<p>{escape(text('more', n=rest))}</p>" if rest > 0 else ""
    grid = f"<div class='grid'>{''.join(cards)}</div>{more}" if cards else ""
    return (
        f"<div class='finding'><h3>{escape(text.title(finding))}</h3><p>{escape(text.message(finding))}</p>"
        f"{explain}{grid}</div>"
    )


def _card(report: DoctorReport, finding: Finding, image: Path, thumbs: dict[Path, str], text: _Text) -> str:
    if image not in thumbs:
        thumbs[image] = _thumbnail(image, text)
    name = escape(image.relative_to(report.folder).as_posix())
    none = " none" if report.caption_missing(image) else ""
    caption = escape(text.caption(report, image))
    scores = "".join(
        f"<span class='score' title='{escape(_meaning(score, finding, text))}'>"
        f"{escape(text.score(score))}</span>"
        for score in report.scores(image, finding, clutter=True)
    )
    return (
        f"<figure class='card'>{thumbs[image]}<figcaption><b>{name}</b>"
        f"<span class='caption{none}'>{caption}</span>{scores}</figcaption></figure>"
    )


def _meaning(score: str, finding: Finding, text: _Text) -> str:
    """The line that explains ``score``, shown when the pointer rests on it (the legend has them all)."""
    return text.clutter() if score.startswith("clutter") else text.explain(finding)


def _thumbnail(image: Path, text: _Text) -> str:
    try:
        img = preview(image)
    except DECODE_ERRORS:  # the unreadable images are flagged too: show a placeholder for them
        return f"<div class='missing'>{text('unreadable')}</div>"
    img.thumbnail((THUMB, THUMB))
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=80)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img src='data:image/jpeg;base64,{data}' alt=''>"


def _legend_html(report: DoctorReport, text: _Text) -> str:
    lines = report.explanations()
    if not lines:
        return ""
    if text.zh:  # the same lines, each the Chinese of its check's
        by_line = {f.explain: text.explain(f) for f in report.findings if f.explain}
        lines = [text.clutter() if line == CLUTTER_EXPLAINED else by_line.get(line, line) for line in lines]
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<h2>{text('legend')}</h2><ul>{items}</ul>"


def _tags_html(report: DoctorReport, text: _Text) -> str:
    if not report.tag_frequency:
        return ""
    counts = report.tag_frequency.most_common()
    rows = "".join(f"<tr><td>{escape(tag)}</td><td>{count}</td></tr>" for tag, count in counts)
    head = f"<tr><th>{text('tag')}</th><th>{text('count')}</th></tr>"
    return f"<h2>{text('tags')}</h2><table>{head}{rows}</table>"
