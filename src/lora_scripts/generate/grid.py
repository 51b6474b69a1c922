"""An X/Y grid like WebUI's X/Y/Z plot: images in rows and columns, with labels on the left and on top."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw, ImageFont

PAD = 8
BACKGROUND, INK = (255, 255, 255), (0, 0, 0)


def make_grid(
    images: list[Image.Image], row_labels: list[str], col_labels: list[str], font_size: int | None = None
) -> Image.Image:
    """Images in row-major order (row 0: cols 0..n-1, ...), each cell the size of the largest image."""
    rows, cols = max(len(row_labels), 1), max(len(col_labels), 1)
    if len(images) != rows * cols:
        raise ValueError(f"{len(images)} images do not fill a {rows}x{cols} grid")
    cell_w, cell_h = max(i.width for i in images), max(i.height for i in images)
    font = ImageFont.load_default(size=font_size or max(10, min(28, cell_w // 12)))
    col_text = [_wrap(t, font, cell_w) for t in col_labels]
    row_text = [_wrap(t, font, max(cell_w, 160)) for t in row_labels]
    left = max((_size(t, font)[0] for t in row_text), default=0) + 2 * PAD if any(row_labels) else 0
    top = max((_size(t, font)[1] for t in col_text), default=0) + 2 * PAD if any(col_labels) else 0
    grid = Image.new("RGB", (left + cols * cell_w, top + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(col_text):
        w, h = _size(text, font)
        draw.multiline_text(
            (left + c * cell_w + (cell_w - w) // 2, (top - h) // 2), text, INK, font, align="center"
        )
    for r, text in enumerate(row_text):
        w, h = _size(text, font)
        draw.multiline_text((PAD, top + r * cell_h + (cell_h - h) // 2), text, INK, font)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        x = left + c * cell_w + (cell_w - image.width) // 2
        grid.paste(image.convert("RGB"), (x, top + r * cell_h + (cell_h - image.height) // 2))
    return grid


def _wrap(text: str, font, width: int) -> str:
    """Break a label into lines that fit `width` pixels (at most 4 lines, then an ellipsis)."""
    chars = max(8, int(width / max(font.getlength("n"), 1)))
    lines = textwrap.wrap(text, chars) or [""]
    return "\n".join(lines[:4]) + ("…" if len(lines) > 4 else "")


def _size(text: str, font) -> tuple[int, int]:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]
