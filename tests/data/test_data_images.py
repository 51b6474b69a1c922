from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from lora_scripts.data import list_images, open_image
from lora_scripts.data.images import image_size
from lora_scripts.errors import DataError


def _noise_jpeg(path, size=(256, 256)):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=95)
    return path


def test_list_images_recursive_sorted_case_insensitive_skips_hidden(tmp_path, make_image):
    make_image(tmp_path / "b.PNG")
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "10_x" / "c.JpEg")
    make_image(tmp_path / ".hidden.png")
    make_image(tmp_path / ".cache" / "d.png")
    (tmp_path / "notes.txt").write_text("not an image")
    found = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert found == ["10_x/c.JpEg", "a.jpg", "b.PNG"]


def test_exif_rotated_jpeg_reports_transposed_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (200, 100), (10, 20, 30)).save(path, exif=exif)
    assert image_size(path) == (100, 200)
    assert image_size(path, verify=True) == (100, 200)
    assert open_image(path).size == (100, 200)
    png = tmp_path / "rotated.png"
    Image.new("RGB", (200, 100)).save(png, exif=exif)
    assert image_size(png) == (100, 200)
    assert image_size(png, verify=True) == (100, 200)
    assert open_image(png).size == (100, 200)


@pytest.mark.parametrize(
    ("mode", "name"),
    [("RGBA", "a.png"), ("LA", "la.png"), ("L", "grey.png"), ("CMYK", "cmyk.jpg"), ("I;16", "deep.png")],
)
def test_modes_load_as_rgb(tmp_path, make_image, mode, name):
    color = {"LA": (50, 255), "I;16": 40000}.get(mode)
    path = make_image(tmp_path / name, (32, 16), mode=mode, color=color)
    img = open_image(path)
    assert img.mode == "RGB"
    assert img.size == (32, 16)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path, make_image):
    path = make_image(tmp_path / "deep.png", (8, 8), mode="I;16", color=32896)
    assert open_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_transparency_is_composited_on_white(tmp_path, make_image):
    rgba = make_image(tmp_path / "clear.png", (8, 8), mode="RGBA", color=(255, 0, 0, 0))
    assert open_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 200, 10, 10])
    palette.putpixel((1, 1), 1)
    path = tmp_path / "palette.png"
    palette.save(path, transparency=0)
    img = open_image(path)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 1)) == (200, 10, 10)


def test_truncated_jpeg_raises_data_error_naming_file(tmp_path):
    path = _noise_jpeg(tmp_path / "cut.jpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg"):
        open_image(path)
    with pytest.raises(DataError, match="cut.jpg"):
        image_size(path, verify=True)


def test_truncated_png_fails_verify(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "cut.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png"):
        image_size(path, verify=True)


def test_empty_png_raises_data_error(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png.*empty") as err:
        open_image(path)
    assert "delete" in str(err.value)
    with pytest.raises(DataError, match="empty.png"):
        image_size(path)


def test_text_file_named_png_raises_data_error(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not a picture")
    with pytest.raises(DataError, match="fake.png.*not an image"):
        open_image(path)
    with pytest.raises(DataError, match="fake.png"):
        image_size(path)


def test_valid_webp_and_bmp_open(tmp_path, make_image):
    for name in ("x.webp", "x.bmp"):
        path = make_image(tmp_path / name, (20, 10))
        assert image_size(path, verify=True) == (20, 10)
        assert open_image(path).size == (20, 10)


def test_open_image_pixels_survive(tmp_path):
    path = tmp_path / "px.png"
    rng = random.Random(3)
    img = Image.new("RGB", (4, 4))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(16)])
    img.save(path)
    assert list(open_image(path).getdata()) == list(img.getdata())
