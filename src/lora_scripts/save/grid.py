"""An X/Y grid like WebUI's X/Y/Z plot: images in rows and columns, with labels on the left and on top."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

PAD = 8
MAX_LABEL_WIDTH = 320  # px: columns grow up to this for their labels, row labels wrap at it
BACKGROUND, INK = (255, 255, 255), (0, 0, 0)


def make_grid(
    images: list[Image.Image], row_labels: list[str], col_labels: list[str], font_size: int | None = None
) -> Image.Image:
    """Images in row-major order (row 0: columns 0..n-1, then row 1, ...), centred in equal cells."""
    rows, cols = max(len(row_labels), 1), max(len(col_labels), 1)
    if len(images) != rows * cols:
        raise ValueError(f"{len(images)} images do not fill a {rows}x{cols} grid")
    font = ImageFont.load_default(size=font_size or max(12, min(28, max(i.width for i in images) // 20)))
    widest_col = max((_size(t, font)[0] + PAD for t in col_labels), default=0)
    cell_w = max(max(i.width for i in images), min(widest_col, MAX_LABEL_WIDTH))
    cell_h = max(i.height for i in images)
    col_text = [_wrap(t, font, cell_w - PAD) for t in col_labels]
    row_text = [_wrap(t, font, MAX_LABEL_WIDTH) for t in row_labels]
    left = max((_size(t, font)[0] for t in row_text), default=0) + 2 * PAD if any(row_labels) else 0
    top = max((_size(t, font)[1] for t in col_text), default=0) + 2 * PAD if any(col_labels) else 0
    grid = Image.new("RGB", (left + cols * cell_w, top + rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for c, text in enumerate(col_text):
        w, h = _size(text, font)
        xy = (left + c * cell_w + (cell_w - w) // 2, (top - h) // 2)
        draw.multiline_text(xy, text, INK, font, align="center")
    for r, text in enumerate(row_text):
        draw.multiline_text((PAD, top + r * cell_h + (cell_h - _size(text, font)[1]) // 2), text, INK, font)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        xy = (
            left + c * cell_w + (cell_w - image.width) // 2,
            top + r * cell_h + (cell_h - image.height) // 2,
        )
        grid.paste(image.convert("RGB"), xy)
    return grid


def _wrap(text: str, font, width: int, max_lines: int = 4) -> str:
    """Break a label at spaces into lines of at most `width` pixels (kept lines: max_lines, then …)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > width:
                lines.append(line)
                candidate = word
            line = candidate
        lines.append(line)
    return "\n".join(lines[:max_lines]) + ("…" if len(lines) > max_lines else "")


def _size(text: str, font) -> tuple[int, int]:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]
