"""Only files Pillow cannot decode are "unreadable images"; a bug in our code is not blamed on the file."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from lora_scripts.data import images
from lora_scripts.data.images import image_size, open_image
from lora_scripts.errors import DataError


def _claimed_size_png(path, width: int, height: int):
    """A small real PNG whose header claims width x height (the decompression-bomb shape)."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def test_a_bug_while_opening_is_not_called_a_damaged_image(tmp_path, make_image, monkeypatch):
    path = make_image(tmp_path / "fine.png")

    def broken(_img):
        raise TypeError("a bug in our code")

    monkeypatch.setattr(images.ImageOps, "exif_transpose", broken)
    with pytest.raises(TypeError, match="a bug in our code"):
        open_image(path)


def test_a_bug_while_measuring_is_not_called_a_damaged_image(tmp_path, make_image, monkeypatch):
    path = make_image(tmp_path / "fine.jpg")
    monkeypatch.setattr(images, "_orientation", lambda img, loaded: img.no_such_attribute)
    with pytest.raises(AttributeError):
        image_size(path, verify=True)


@pytest.mark.parametrize("cut", [0, 40, 300])
def test_truncated_files_are_still_unreadable_images(tmp_path, make_image, cut):
    whole = make_image(tmp_path / "whole.jpg", size=(128, 128), quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.read_bytes()[:cut])
    for read in (open_image, lambda p: image_size(p, verify=True)):
        with pytest.raises(DataError, match="cannot be read"):
            read(path)


def test_decompression_bomb_says_so(tmp_path):
    path = _claimed_size_png(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(DataError, match="more pixels than Pillow's safety limit") as info:
        image_size(path)
    assert "Resize it" in str(info.value)
