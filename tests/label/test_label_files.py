"""Never lose hand edits: existing rows and sidecars are kept byte for byte; bad input leaves files alone."""

from __future__ import annotations

import pytest

from lora_scripts.data.captions import read_metadata_csv
from lora_scripts.errors import ConfigError, DataError, OutputError
from lora_scripts.label.run import LabelOptions, label_folder, with_trigger

EDITED = 'filename,prompt\r\nimg_00.png,"futuristic smartphone, glowing edges"\r\ngone.png,kept anyway\r\n'


def test_existing_rows_are_kept_and_only_new_images_added(images, tiny_classifier):
    csv_path = images / "metadata.csv"
    csv_path.write_bytes(EDITED.encode("utf-8"))
    result = label_folder(LabelOptions(images, model=str(tiny_classifier)))
    text = csv_path.read_bytes().decode("utf-8")
    assert text.startswith(EDITED)  # byte for byte, Windows line ends and all
    rows = read_metadata_csv(csv_path)
    assert rows["img_00.png"] == "futuristic smartphone, glowing edges"
    assert rows["gone.png"] == "kept anyway"
    assert sorted(rows) == ["gone.png", "img_00.png", "img_01.png", "img_02.png"]
    assert (result.labelled, result.kept) == (2, 1)
    assert "\r\nimg_01.png," in text


def test_nothing_new_means_nothing_written(images, tiny_classifier):
    label_folder(LabelOptions(images, model=str(tiny_classifier)))
    before = (images / "metadata.csv").stat().st_mtime_ns
    result = label_folder(LabelOptions(images, model="not/loaded-because-nothing-to-do"))
    assert result.labelled == 0 and result.written == []
    assert (images / "metadata.csv").stat().st_mtime_ns == before


def test_column_order_of_an_existing_file_is_followed(images, tiny_classifier):
    csv_path = images / "metadata.csv"
    csv_path.write_text("caption,file_name\nmy words,img_00.png\n", encoding="utf-8")
    label_folder(LabelOptions(images, model=str(tiny_classifier)))
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == ["caption,file_name", "my words,img_00.png"]
    assert lines[2].endswith(",img_01.png")


def test_overwrite_relabels_everything(images, tiny_classifier):
    (images / "metadata.csv").write_text(EDITED, encoding="utf-8")
    label_folder(LabelOptions(images, model=str(tiny_classifier), overwrite=True))
    rows = read_metadata_csv(images / "metadata.csv")
    assert sorted(rows) == ["img_00.png", "img_01.png", "img_02.png"]
    assert rows["img_00.png"].endswith(" style")


def test_txt_sidecars_keep_existing_files(images, tiny_classifier):
    (images / "img_01.txt").write_text("hand written\n", encoding="utf-8")
    result = label_folder(LabelOptions(images, model=str(tiny_classifier), format="txt", trigger="tp"))
    assert (images / "img_01.txt").read_text(encoding="utf-8") == "hand written\n"
    assert (images / "img_00.txt").read_text(encoding="utf-8").startswith("tp, ")
    assert len(result.written) == 2 and not (images / "metadata.csv").exists()


def test_images_in_subfolders_get_relative_names(tmp_path, tiny_classifier, draw):
    draw(tmp_path / "data" / "10_phone", count=2)
    label_folder(LabelOptions(tmp_path / "data", model=str(tiny_classifier)))
    rows = read_metadata_csv(tmp_path / "data" / "metadata.csv")
    assert sorted(rows) == ["10_phone/img_00.png", "10_phone/img_01.png"]


def test_output_elsewhere(images, tmp_path, tiny_classifier):
    out = tmp_path / "labels" / "new" / "metadata.csv"
    label_folder(LabelOptions(images, output=out, model=str(tiny_classifier)))
    assert len(read_metadata_csv(out)) == 3


def test_no_images(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(DataError, match="No images"):
        label_folder(LabelOptions(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        label_folder(LabelOptions(tmp_path / "nope"))


def test_non_image_with_image_extension_leaves_metadata_untouched(images):
    (images / "metadata.csv").write_text(EDITED, encoding="utf-8")
    (images / "fake.png").write_text("this is text, not a PNG")
    with pytest.raises(DataError, match="fake.png' cannot be read") as info:
        label_folder(LabelOptions(images, model="never/loaded"))
    assert "nothing was written" in str(info.value)
    assert (images / "metadata.csv").read_bytes() == EDITED.encode("utf-8")


def test_unwritable_output(images):
    blocker = images / "img_00.png"  # a file where a folder should be
    with pytest.raises(OutputError, match="Cannot write"):
        label_folder(LabelOptions(images, output=blocker / "metadata.csv", model="never/loaded"))
    with pytest.raises(OutputError, match="is a folder"):
        label_folder(LabelOptions(images, output=images, model="never/loaded"))


def test_bad_options(images):
    with pytest.raises(ConfigError, match="Unknown backend"):
        label_folder(LabelOptions(images, backend="blip"))
    with pytest.raises(ConfigError, match="--format txt"):
        label_folder(LabelOptions(images, format="txt", output=images))


def test_with_trigger():
    assert with_trigger("neon phone", "tp") == "tp, neon phone"
    assert with_trigger("TP, neon phone", "tp") == "TP, neon phone"
    assert with_trigger("", "tp") == "tp"
    assert with_trigger("neon phone", None) == "neon phone"
