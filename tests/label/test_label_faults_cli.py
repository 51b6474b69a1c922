"""`lora-scripts label` on an existing metadata.csv it must not damage: a quote left open at its end, and
files saved by Excel on Chinese Windows (GBK)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_scripts.data.captions import read_metadata_csv

OPEN_QUOTE = 'filename,prompt\nimg_00.png,"neon style, phone\n'


def _label(cli, images: Path, model: Path):
    return cli("label", "--input", str(images), "--model", str(model))


def test_open_quote_at_the_end_is_refused_and_nothing_is_written(images, tiny_classifier, cli):
    csv_path = images / "metadata.csv"
    csv_path.write_text(OPEN_QUOTE, encoding="utf-8")
    done = _label(cli, images, tiny_classifier)
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and "line 2" in lines[0] and "quote" in lines[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert csv_path.read_text(encoding="utf-8") == OPEN_QUOTE


def test_open_quote_without_a_final_newline_is_refused_before_any_model_work(images):
    from lora_scripts.errors import DataError
    from lora_scripts.label.run import LabelOptions, label_folder

    csv_path = images / "metadata.csv"
    csv_path.write_bytes(OPEN_QUOTE.rstrip("\n").encode())
    with pytest.raises(DataError, match="Line 2 .* never closed"):
        label_folder(LabelOptions(images, model="never/loaded", overwrite=False))
    assert csv_path.read_bytes() == OPEN_QUOTE.rstrip("\n").encode()


def test_gbk_metadata_is_converted_to_utf8_and_the_original_kept(images, tiny_classifier, cli):
    csv_path = images / "metadata.csv"
    original = "filename,prompt\r\nimg_00.png,霓虹风格，手机\r\n".encode("gbk")
    csv_path.write_bytes(original)
    (images / "metadata.csv.bak").write_bytes(b"an older backup the user made")
    done = _label(cli, images, tiny_classifier)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 new, 1 kept" in done.stderr
    assert "metadata.csv.bak1" in done.stderr and "GB18030" in done.stderr, done.stderr
    assert (images / "metadata.csv.bak").read_bytes() == b"an older backup the user made"
    assert (images / "metadata.csv.bak1").read_bytes() == original
    text = csv_path.read_bytes().decode("utf-8")  # strict: the new file is UTF-8 through and through
    assert text.startswith("filename,prompt\r\nimg_00.png,霓虹风格，手机\r\n")
    assert sorted(read_metadata_csv(csv_path)) == ["img_00.png", "img_01.png", "img_02.png"]
    again = _label(cli, images, tiny_classifier)  # now UTF-8: nothing new, no second backup
    assert again.returncode == 0 and "already have captions" in again.stderr, again.stderr[-3000:]
    assert not (images / "metadata.csv.bak2").exists()


def test_backup_path_never_overwrites(tmp_path):
    from lora_scripts.label.writer import backup_path

    target = tmp_path / "metadata.csv"
    assert backup_path(target) == tmp_path / "metadata.csv.bak"
    (tmp_path / "metadata.csv.bak").write_text("x")
    (tmp_path / "metadata.csv.bak1").write_text("x")
    assert backup_path(target) == tmp_path / "metadata.csv.bak2"


def test_overwrite_of_a_gbk_file_keeps_it_too(images, tiny_classifier):
    from lora_scripts.label.run import LabelOptions, label_folder

    original = "filename,prompt\nimg_00.png,霓虹风格\n".encode("gbk")
    (images / "metadata.csv").write_bytes(original)
    label_folder(LabelOptions(images, model=str(tiny_classifier), overwrite=True))
    assert (images / "metadata.csv.bak").read_bytes() == original
    assert len(read_metadata_csv(images / "metadata.csv")) == 3


def test_utf8_file_is_appended_without_a_backup(images, tiny_classifier):
    from lora_scripts.label.run import LabelOptions, label_folder

    (images / "metadata.csv").write_bytes("\ufefffilename,prompt\nimg_00.png,霓虹风格\n".encode())
    label_folder(LabelOptions(images, model=str(tiny_classifier)))
    assert (images / "metadata.csv").read_bytes().startswith("\ufefffilename,prompt\nimg_00.png,".encode())
    assert not list(images.glob("*.bak*"))
