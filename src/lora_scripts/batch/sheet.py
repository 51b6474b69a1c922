"""index.html: a contact sheet of every finished image, filterable by category, for review."""

from __future__ import annotations

import html
from pathlib import PurePosixPath

THUMB = 256  # px, the longer side of a thumbnail

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:sans-serif;margin:1em}}
figure{{display:inline-block;margin:4px;width:{w}px;vertical-align:top}}
img{{width:{w}px;height:auto;background:#eee}} figcaption{{font-size:11px;word-break:break-all}}
</style></head><body><h1>{title}</h1><p>{count} images. Category / 类别:
<select id="cat" onchange="var c=this.value;
document.querySelectorAll('figure').forEach(function(f){{f.style.display=(!c||f.dataset.cat===c)?'':'none'}})">
<option value="">all / 全部</option>{options}</select></p>
{figures}</body></html>
"""


def write_sheet(out, rows: list[dict], categories: dict[str, str], title: str, width: int = 160) -> None:
    """`out`: the job's output (store.py); `rows`: index.csv rows in order; `categories`: id -> category (''
    when the job has no `by`)."""
    cats = sorted({c for c in categories.values() if c})
    options = "".join(f'<option value="{html.escape(c)}">{html.escape(c)}</option>' for c in cats)
    figures = "\n".join(_figure(r, categories.get(r["id"], "")) for r in rows)
    page = PAGE.format(title=html.escape(title), w=width, count=len(rows), options=options, figures=figures)
    out.write_text("index.html", page)


def _figure(row: dict, category: str) -> str:
    """A thumbnail linking to the full image; an image made before thumbnails were written shows itself."""
    full, thumb = html.escape(row["file"]), html.escape(thumb_of(row["file"]))
    return (
        f'<figure data-cat="{html.escape(category)}"><a href="{full}"><img loading="lazy" src="{thumb}" '
        f'onerror="this.onerror=null;this.src=\'{full}\'" title="{html.escape(row["prompt"])}"></a>'
        f"<figcaption>{html.escape(row['id'])} #{row['n']}</figcaption></figure>"
    )


def thumb_of(file: str) -> str:
    """`images/phone/A1_0.png` -> `thumbs/phone/A1_0.jpg` (output_dir-relative, forward slashes)."""
    path = PurePosixPath(file)
    return str(PurePosixPath("thumbs", *path.parts[1:]).with_suffix(".jpg"))
