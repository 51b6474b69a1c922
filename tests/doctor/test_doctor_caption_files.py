"""`lora-scripts doctor` on caption files that passed with a warning or were refused for their encoding."""

from __future__ import annotations

from pathlib import Path

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor


def test_header_only_metadata_is_an_error(clean_folder: Path, run_cli):
    (clean_folder / "metadata.csv").write_text("filename,prompt\n", encoding="utf-8")
    for txt in clean_folder.glob("*.txt"):
        txt.unlink()
    done = run_cli("doctor", str(clean_folder), "--resolution", "64", "--no-report")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "ERROR: Metadata file" in done.stderr and "only its header line" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_header_only_metadata_with_sidecars_for_every_image_is_fine(clean_folder: Path):
    (clean_folder / "metadata.csv").write_text("filename,prompt\n", encoding="utf-8")
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64))
    assert report.errors == [] and report.num_captioned == 4


def test_gbk_captions_are_read_and_named_in_the_summary(clean_folder: Path):
    for i, txt in enumerate(sorted(clean_folder.glob("*.txt"))):
        txt.write_bytes(f"tchphn, 霓虹 {i}".encode("gbk"))
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64))
    assert report.errors == [] and report.num_captioned == 4
    assert "Read 4 caption files as GB18030 (Chinese Windows encoding)" in report.summary()
    assert report.tag_frequency["霓虹 0"] == 1


def test_metadata_folder_is_named(clean_folder: Path):
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64, metadata_path=clean_folder))
    assert any("is a folder" in error for error in report.errors), report.errors
