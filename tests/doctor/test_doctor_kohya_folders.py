"""The doctor reads kohya's folder names as training does: `0_name` folders are switched off (a note), and a
training folder that is itself an `N_name` folder is a warning; each with its Chinese sentence."""

from __future__ import annotations

import pytest

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor
from lora_scripts.doctor.text_zh import FINDINGS_ZH, finding_zh
from lora_scripts.errors import DataError


def _zh(finding) -> str:
    assert finding.kind in FINDINGS_ZH
    return finding_zh(finding.kind, finding.params, finding.message)


def test_a_zero_repeats_folder_is_left_out_and_noted(clean_folder, painter):
    clean_image, _ = painter
    off = clean_folder / "0_old shots"
    off.mkdir()
    for i in range(2):
        clean_image(40 + i).save(off / f"old_{i}.png")  # no captions: not "no caption" findings
    (off / "old_0.txt").write_text("tchphn, old", encoding="utf-8")  # not "caption without image"
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64, trigger_word="tchphn"))
    assert report.num_images == 4 and not report.errors and not report.warnings
    (note,) = report.findings
    assert note.level == "note" and note.kind == "switched off"
    assert note.message == (
        "2 images in '0_old shots' are left out of training because a 0_ folder name means 0 repeats, which "
        "switches the folder off as in kohya; rename it to e.g. '1_name' to train them"
    )
    assert _zh(note) == (
        "文件夹“0_old shots”的名字以 0_ 开头，表示重复 0 次，和 kohya 一样算作关闭，"
        "里面的 2 张图片不参与训练；想训练它们，请把开头的 0 改成重复次数，例如“1_名字”。"
    )


def test_metadata_rows_of_switched_off_images_are_not_orphans(clean_folder, painter):
    clean_image, _ = painter
    (clean_folder / "sub" / "0_off").mkdir(parents=True)
    clean_image(50).save(clean_folder / "sub" / "0_off" / "x.png")
    rows = [f"ok_{i}.png,tchphn, device {i}" for i in range(4)] + ["sub/0_off/x.png,tchphn, x"]
    (clean_folder / "metadata.csv").write_text("filename,prompt\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64, trigger_word="tchphn"))
    assert [f.kind for f in report.findings] == ["switched off"]
    assert "'sub/0_off'" in report.findings[0].message


def test_only_switched_off_images_is_the_trainings_sentence(tmp_path, painter):
    clean_image, _ = painter
    (tmp_path / "img" / "0_x").mkdir(parents=True)
    clean_image(1).save(tmp_path / "img" / "0_x" / "a.png")
    with pytest.raises(DataError, match="switched off by its 0_ name"):
        run_doctor(DataConfig(train_data_dir=tmp_path / "img", resolution=64))


def test_a_training_folder_that_is_a_repeats_folder_is_a_warning(clean_folder):
    folder = clean_folder.rename(clean_folder.parent / "10_neon phone")
    report = run_doctor(DataConfig(train_data_dir=folder, resolution=64, trigger_word="tchphn"))
    (warning,) = [f for f in report.findings if f.kind == "repeats folder"]
    assert warning.level == "warning" and report.warnings == [
        "'10_neon phone' is a kohya repeats folder: its repeats and class name are read only from subfolders "
        "of train_data_dir; set train_data_dir to its parent folder"
    ]
    assert "“10_neon phone”本身是 kohya 的“数字_名字”文件夹" in _zh(warning)
    parent = run_doctor(DataConfig(train_data_dir=folder.parent, resolution=64, trigger_word="tchphn"))
    assert not [f for f in parent.findings if f.kind == "repeats folder"]
