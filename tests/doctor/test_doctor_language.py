"""SD 1.x / SDXL text encoders read English: captions written mostly in Chinese are flagged, in the doctor's
report and in the warnings training prints first; tags split on the Chinese commas too."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor
from lora_scripts.doctor.captions import tag_frequency
from lora_scripts.doctor.language import mostly_chinese

CHINESE = ["霓虹风格，手机，金属", "霓虹风格、笔记本电脑、极简", "tchphn，霓虹灯下的平板电脑"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("霓虹风格，手机，金属质感", True),
        ("tchphn, 霓虹灯下的手机", True),  # a trigger word in Latin letters does not make it English
        ("neon style, smartphone, metal", False),
        ("neon style, smartphone, 金属", False),  # one Chinese word among English ones
        ("", False),
        ("1girl, ^_^, 2024", False),
    ],
)
def test_mostly_chinese(text, expected):
    assert mostly_chinese(text) is expected


def _chinese_folder(clean_folder: Path) -> Path:
    for i, text in enumerate(CHINESE):
        (clean_folder / f"ok_{i}.txt").write_text(text + "\n", encoding="utf-8")
    return clean_folder


def test_doctor_warns_about_chinese_captions_and_says_what_to_do(clean_folder):
    report = run_doctor(DataConfig(train_data_dir=_chinese_folder(clean_folder), resolution=64))
    finding = next(f for f in report.findings if f.check == "Chinese caption")
    assert finding.level == "warning" and len(finding.images) == 3
    assert "ok_3.png" not in finding.message and "English" in finding.message
    assert "translate" in finding.message and "\n" not in finding.message
    assert finding.message in report.summary()
    html = report.write_html(clean_folder / "report.html").read_text(encoding="utf-8")
    assert "text encoder" in html and "霓虹风格，手机，金属" in html


def test_training_prints_the_warning_first(clean_folder, base_config, tmp_path, cli):
    data = Path(base_config["train_data_dir"])
    with open(data / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "prompt"])
        writer.writerows(
            (image.name, f"霓虹风格，设备{i}号") for i, image in enumerate(sorted(data.glob("*.png")))
        )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base_config, allow_unicode=True), encoding="utf-8")
    done = cli("train", "--config", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "doctor:" in done.stderr and "mostly Chinese" in done.stderr, done.stderr[-3000:]


def test_tag_frequency_splits_on_chinese_commas():
    counts = tag_frequency(["霓虹风格，手机、金属", "霓虹风格, 手机"])
    assert counts == {"霓虹风格": 2, "手机": 2, "金属": 1}


def test_sample_prompt_warning_for_the_trainer():
    from lora_scripts.doctor.language import chinese_prompt_warning

    assert chinese_prompt_warning(["neon style, smartphone", "tchphn, laptop"]) is None
    line = chinese_prompt_warning(["neon style, smartphone", "霓虹风格的笔记本电脑"])
    assert line.startswith("1 sample prompt is mostly Chinese (e.g. '霓虹风格的笔记本电脑')")
    assert line.endswith("write sample_prompts in English") and "\n" not in line
