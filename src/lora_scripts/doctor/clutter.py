"""A clutter score per image: edge density and colour entropy of the border band, where background lives.

Hand-written because no maintained library scores "busy background"; both measures are a few numpy lines.
It is a pointer for a human, not a verdict: the busiest images are listed for a look.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CLUTTER_FLAG = 0.6  # scores at or above this are listed (noise ~0.95, a plain studio backdrop ~0.1)
PLAIN_BELOW = 0.3  # below this a background reads as plain
CLUTTER_EXPLAINED = (
    "clutter = how busy the background is (edges and colour variety in the outer quarter of the image): "
    "0 = plain backdrop (a studio shot scores about 0.1), 1 = busy everywhere (noise scores about 0.95); "
    f"{CLUTTER_FLAG:.2f} or more is high and listed as a warning"
)
_EDGE = 0.08  # gradient magnitude (0..1 intensity per pixel) that counts as an edge
_SIDE = 128


def clutter_score(img: Image.Image) -> float:
    """0 (plain background) .. 1 (busy everywhere), from the outer quarter of the image on every side."""
    small = img.convert("RGB").resize((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.float32) / 255.0
    band = _border_band(_SIDE)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.gradient(grey)
    edge_density = float((np.hypot(gx, gy)[band] > _EDGE).mean())
    return round(0.5 * min(1.0, edge_density / 0.5) + 0.5 * colour_entropy(rgb[band]), 3)


def describe_clutter(score: float) -> str:
    """ "clutter 0.08 (plain)": the score with a word a designer reads at a glance."""
    word = "busy" if score >= CLUTTER_FLAG else "plain" if score < PLAIN_BELOW else "some detail"
    return f"clutter {score:.2f} ({word})"


def colour_entropy(pixels: np.ndarray) -> float:
    """Shannon entropy of a 512-bin colour histogram (3 bits per channel), scaled to 0..1."""
    bins = (pixels * 7.999).astype(np.int64)
    index = bins[..., 0] * 64 + bins[..., 1] * 8 + bins[..., 2]
    counts = np.bincount(index.ravel(), minlength=512).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum() / 9.0)


def _border_band(side: int) -> np.ndarray:
    mask = np.ones((side, side), dtype=bool)
    inner = side // 4
    mask[inner : side - inner, inner : side - inner] = False
    return mask
