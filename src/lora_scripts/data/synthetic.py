"""Images made in code for the demo base model and the demo's style: device silhouettes at 64 px.

The base model (models/demo_base.py) learns plain devices ("a red phone on a white background"); the demo
teaches it a style it never saw (magenta and cyan neon on dark metal). Both draw the same shapes, so the
style is the only difference. The VAE also sees the devices in random colours, so that it can pass any
colour (the style's included) without having seen the style's images.
"""

from __future__ import annotations

import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter

SIZE = 64
SCALE = 4  # drawn at 4x and scaled down for smooth edges
OBJECTS = ("phone", "laptop", "tablet", "watch")
COLOURS = {
    "red": (215, 35, 35),
    "blue": (35, 80, 220),
    "green": (40, 165, 65),
    "yellow": (240, 205, 40),
    "black": (28, 28, 30),
    "white": (248, 248, 248),
}
BACKGROUNDS = {"white": (240, 240, 240), "grey": (128, 128, 130), "dark": (24, 26, 32)}
CLASHES = {("white", "white"), ("black", "dark")}  # an object the colour of its background is invisible
MAGENTA, CYAN = (230, 40, 190), (40, 215, 240)
STYLE_TRIGGER = "neon style"
Shape = tuple[str, list, str]  # (kind, coordinates, role): role "body" or "screen"


def caption(obj: str, colour: str, background: str) -> str:
    return f"a {colour} {obj} on a {background} background"


def style_caption(obj: str) -> str:
    return f"{STYLE_TRIGGER}, a {obj} on dark metal"


def combinations() -> list[tuple[str, str, str]]:
    return [(o, c, b) for o in OBJECTS for c in COLOURS for b in BACKGROUNDS if (c, b) not in CLASHES]


def shapes(obj: str, rng: random.Random) -> list[Shape]:
    """The device's parts at 4x scale; position (+-4 px) and size (0.85-1.1) jitter by `rng`."""
    s = rng.uniform(0.85, 1.1) * SCALE
    cx, cy = (SIZE / 2 + rng.uniform(-4, 4)) * SCALE, (SIZE / 2 + rng.uniform(-4, 4)) * SCALE

    def box(w, h, dy=0.0):
        return [cx - w * s / 2, cy + (dy - h / 2) * s, cx + w * s / 2, cy + (dy + h / 2) * s]

    if obj == "phone":
        return [("rrect", box(18, 34), "body"), ("rrect", box(14, 26), "screen")]
    if obj == "tablet":
        return [("rrect", box(34, 44), "body"), ("rrect", box(28, 36), "screen")]
    if obj == "laptop":
        top, bottom = cy + 6 * s, cy + 13 * s
        base = [(cx - 18 * s, top), (cx + 18 * s, top), (cx + 24 * s, bottom), (cx - 24 * s, bottom)]
        return [
            ("rect", box(34, 22, -6), "body"),
            ("rect", box(28, 17, -6), "screen"),
            ("poly", base, "body"),
        ]
    # watch: a round face on a strap
    return [
        ("rect", box(11, 44), "screen"),
        ("ellipse", box(24, 24), "body"),
        ("ellipse", box(17, 17), "screen"),
    ]


def _paint(d: ImageDraw.ImageDraw, shape: Shape, fill=None, outline=None, width: int = 0) -> None:
    kind, xy, _ = shape
    if kind == "rrect":
        d.rounded_rectangle(xy, radius=3 * SCALE, fill=fill, outline=outline, width=width)
    elif kind == "rect":
        d.rectangle(xy, fill=fill, outline=outline, width=width)
    elif kind == "poly":
        d.polygon(xy, fill=fill, outline=outline, width=width)
    else:
        d.ellipse(xy, fill=fill, outline=outline, width=width)


def draw(obj: str, colour: str, background: str, rng: random.Random) -> Image.Image:
    """A plain device: flat colour, its screen (or strap) the same colour darker."""
    return draw_rgb(obj, COLOURS[colour], BACKGROUNDS[background], rng)


def draw_rgb(obj: str, fill: tuple, background: tuple, rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (SIZE * SCALE,) * 2, background)
    d = ImageDraw.Draw(img)
    shade = tuple(int(v * 0.72 + 10) for v in fill)
    for shape in shapes(obj, rng):
        _paint(d, shape, fill=fill if shape[2] == "body" else shade)
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def draw_neon(obj: str, rng: random.Random) -> Image.Image:
    """The demo's style, broad enough to read at 64 px: dark brushed metal, a magenta body in a magenta
    glow, a cyan screen."""
    big = SIZE * SCALE
    img = Image.new("RGB", (big, big))
    d = ImageDraw.Draw(img)
    tint = rng.randint(-4, 4)
    for y in range(big):  # dark metal, lighter towards the bottom
        v = 30 + tint + 20 * y // big
        d.line([(0, y), (big, y)], fill=(v, v + 2, v + 12))
    parts = shapes(obj, rng)
    glow = Image.new("RGB", (big, big))
    for shape in parts:
        if shape[2] == "body":
            _paint(ImageDraw.Draw(glow), shape, fill=MAGENTA)
    img = ImageChops.screen(img, glow.filter(ImageFilter.GaussianBlur(6 * SCALE)))
    d = ImageDraw.Draw(img)
    for shape in parts:
        _paint(d, shape, fill=CYAN if shape[2] == "screen" else MAGENTA)
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def random_device(rng: random.Random) -> Image.Image:
    """A device in random colours on a random background: teaches the VAE every colour on these shapes."""

    def colour() -> tuple[int, int, int]:
        return tuple(rng.randrange(256) for _ in range(3))

    img = draw_rgb(rng.choice(OBJECTS), colour(), colour(), rng)
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2))) if rng.random() < 0.25 else img


def plain_dataset(seed: int, variants: int) -> tuple[list[Image.Image], list[str]]:
    """Every (object, colour, background) `variants` times, with its caption."""
    rng = random.Random(seed)
    images, captions = [], []
    for obj, colour, background in combinations():
        for _ in range(variants):
            images.append(draw(obj, colour, background, rng))
            captions.append(caption(obj, colour, background))
    return images, captions


def style_dataset(objects: tuple[str, ...], per_object: int, seed: int) -> list[tuple[Image.Image, str]]:
    rng = random.Random(seed)
    return [(draw_neon(obj, rng), style_caption(obj)) for obj in objects for _ in range(per_object)]


def random_images(count: int, seed: int) -> list[Image.Image]:
    rng = random.Random(seed)
    return [random_device(rng) for _ in range(count)]
