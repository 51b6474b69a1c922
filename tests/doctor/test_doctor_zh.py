"""The doctor's findings carry a code and their parameters, and each code a folder can produce has a
Chinese sentence for the web UI's Chinese page (doctor/text_zh.py), filled from those parameters."""

from __future__ import annotations

import json

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor
from lora_scripts.doctor.text_zh import FALLBACK_ZH, finding_zh


def test_every_finding_of_a_defective_folder_has_its_chinese_sentence(defect_folder, tmp_path):
    report = run_doctor(DataConfig(train_data_dir=defect_folder, resolution=64, trigger_word="tchphn"))
    data = json.loads(report.write_json(tmp_path / "report.json").read_text(encoding="utf-8"))
    codes = {f["code"] for f in data["findings"]}
    assert {"unreadable", "exact duplicate", "near-duplicate", "no caption", "caption without image"} <= codes
    assert {"empty caption", "identical caption", "caption over 75 tokens", "no trigger word"} <= codes
    for finding in data["findings"]:
        text = finding_zh(finding["code"], finding["params"], finding["message"])
        assert not text.startswith(FALLBACK_ZH.split("{")[0]), finding["code"]
        assert "{" not in text and any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_the_chinese_sentence_names_the_files_and_the_numbers(defect_folder, tmp_path):
    report = run_doctor(DataConfig(train_data_dir=defect_folder, resolution=64, trigger_word="tchphn"))
    small = next(f for f in report.findings if f.kind == "smaller than resolution")
    assert finding_zh(small.kind, small.params, small.message) == (
        "1 张图片的短边小于训练尺寸 64 像素，训练时会被放大、变模糊：tiny.png。"
        "请换更大的图片，或调低训练尺寸。"
    )
    empty = next(f for f in report.findings if f.kind == "empty caption")
    assert (
        finding_zh(empty.kind, empty.params, empty.message)
        == "1 张图片的描述是空的：img_03.png。请给每张图写上描述。"
    )


def test_more_files_than_shown_are_counted_and_unknown_codes_fall_back_to_english():
    params = {"n": 7, "files": ["a.png", "b.png"], "more": 5}
    assert (
        finding_zh("empty caption", params, "x")
        == "7 张图片的描述是空的：a.png、b.png，另有 5 个。请给每张图写上描述。"
    )
    assert finding_zh("role order", {}, "Two user turns.") == "（暂无中文说明）Two user turns."
    assert finding_zh("empty caption", {}, "Old report.") == "（暂无中文说明）Old report."
