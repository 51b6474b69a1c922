"""`--backend filename` (or `folder`): captions from folder and file names, no model at all."""

from __future__ import annotations

import pytest

from lora_scripts.data.captions import read_metadata_csv
from lora_scripts.label.run import LabelOptions, label_folder


@pytest.fixture
def named(tmp_path, draw):
    """A kohya folder `10_neon` with images named by what they show, and camera-named ones."""
    root = tmp_path / "train"
    folder = root / "10_neon"
    for path, name in zip(
        draw(folder, count=5),
        [
            "phone_iphone-12_blue.png",
            "IMG_0001.png",
            "DSC01234_red laptop.png",
            "watch (1).png",
            "tablet-01.png",
        ],
        strict=True,
    ):
        path.rename(folder / name)
    return root


def test_folder_and_file_names_become_tags(named):
    result = label_folder(LabelOptions(named, backend="filename"))
    rows = read_metadata_csv(named / "metadata.csv")
    assert rows == {
        "10_neon/phone_iphone-12_blue.png": "neon style, phone, iphone 12, blue",
        "10_neon/IMG_0001.png": "neon style",
        "10_neon/DSC01234_red laptop.png": "neon style, red laptop",
        "10_neon/watch (1).png": "neon style, watch",
        "10_neon/tablet-01.png": "neon style, tablet",
    }
    assert result.labelled == 5


def test_trigger_first_template_and_existing_captions_kept(named):
    (named / "10_neon" / "watch (1).txt").write_text("my own words\n", encoding="utf-8")
    opts = LabelOptions(named, backend="folder", trigger="tchphn", template="{label}", format="txt")
    result = label_folder(opts)
    assert (result.labelled, result.kept) == (4, 1)
    phone = (named / "10_neon" / "phone_iphone-12_blue.txt").read_text(encoding="utf-8")
    assert phone == "tchphn, neon, phone, iphone 12, blue\n"
    assert (named / "10_neon" / "watch (1).txt").read_text(encoding="utf-8") == "my own words\n"


def test_plain_subfolders_and_an_input_named_like_a_kohya_folder(tmp_path, draw):
    root = tmp_path / "5_tech_phone"
    (draw(root / "blue phones", count=1)[0]).rename(root / "blue phones" / "front_view.png")
    label_folder(LabelOptions(root, backend="filename"))
    rows = read_metadata_csv(root / "metadata.csv")
    assert rows == {"blue phones/front_view.png": "tech phone style, blue phones, front, view"}


def test_cli_filename_backend_needs_no_model(named, cli, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    done = cli("label", "--input", str(named), "--backend", "filename", "--trigger", "tchphn")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_metadata_csv(named / "metadata.csv")
    assert rows["10_neon/phone_iphone-12_blue.png"] == "tchphn, neon style, phone, iphone 12, blue"
