"""The doctor reads captions exactly as training does: data/matching.py's matcher, then sidecar files."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml

from lora_scripts.config.data import DataConfig
from lora_scripts.data import scan_dataset
from lora_scripts.doctor import run_doctor


def _write_csv(folder: Path, rows: list[tuple[str, str]]) -> None:
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "prompt"])
        writer.writerows(rows)


@pytest.fixture()
def dotted_rows(sample_data: Path) -> Path:
    """The six sample images, two in a subfolder; rows written `./x.png`, `sub/y.png`, `./sub/z.png`."""
    images = sorted(sample_data.glob("*.png"))
    (sample_data / "sub").mkdir()
    for image in images[1:3]:
        shutil.move(image, sample_data / "sub" / image.name)
    rows = [(f"./{images[0].name}", "neon style, first")]
    rows += [(f"sub/{images[1].name}", "neon style, second")]
    rows += [(f"./sub/{images[2].name}", "neon style, third")]
    rows += [(image.name, f"neon style, number {i}") for i, image in enumerate(images[3:])]
    _write_csv(sample_data, rows)
    return sample_data


def test_dotted_and_subfolder_rows_pass_doctor_and_dry_run(dotted_rows, base_config, tmp_path, cli):
    doctor = cli("doctor", str(dotted_rows), "--resolution", "64", "--no-report")
    assert doctor.returncode == 0, doctor.stderr[-2000:]
    assert "6 images, 6 captioned" in doctor.stderr and "ERROR" not in doctor.stderr
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(base_config), encoding="utf-8")
    dry = cli("train", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "6 images, 6 captioned" in dry.stderr


def test_doctor_counts_what_training_uses(dotted_rows):
    """Rows with an empty prompt and images without a row fall back to their .txt file, as in training."""
    images = sorted(dotted_rows.rglob("*.png"))
    images[-1].with_suffix(".txt").write_text("neon style, from the sidecar\n", encoding="utf-8")
    _write_csv(dotted_rows, [(image.relative_to(dotted_rows).as_posix(), "") for image in images[:-1]])
    for image in images[:2]:
        image.with_suffix(".txt").write_text("neon style, sidecar for an empty row", encoding="utf-8")
    report = run_doctor(DataConfig(train_data_dir=dotted_rows, resolution=64))
    index = scan_dataset(DataConfig(train_data_dir=dotted_rows, resolution=64, min_bucket_reso=32))
    assert len(index.missing_captions) == 3
    flagged = {f.check: set(f.images) for f in report.findings}
    assert "no caption" not in flagged
    assert report.caption_source == "'metadata.csv' and .txt files"
    assert flagged["empty caption"] == set(index.missing_captions)


def test_rows_training_refuses_are_doctor_errors_with_the_same_sentence(sample_data):
    for folder in ("a", "b"):
        (sample_data / folder).mkdir()
        shutil.copy(next(sample_data.glob("*.png")), sample_data / folder / "twice.png")
    _write_csv(sample_data, [("../outside.png", "x"), ("twice.png", "y"), ("ghost.png", "z")])
    report = run_doctor(DataConfig(train_data_dir=sample_data, resolution=64))
    assert any("outside the training folder" in e for e in report.errors)
    assert any("matches several images ('a/twice.png', 'b/twice.png')" in e for e in report.errors)
    orphan = next(f for f in report.findings if f.check == "caption without image")
    assert orphan.level == "error" and "ghost.png" in orphan.message and "twice" not in orphan.message


def test_a_bug_while_drawing_thumbnails_is_not_hidden(defect_folder, tmp_path, monkeypatch):
    from lora_scripts.doctor import html

    report = run_doctor(DataConfig(train_data_dir=defect_folder, resolution=64))

    def broken(_path):
        raise TypeError("a bug in our code")

    monkeypatch.setattr(html, "preview", broken)
    with pytest.raises(TypeError, match="a bug in our code"):
        report.write_html(tmp_path / "report.html")


def test_doctor_and_training_agree_on_images_captioned_by_their_class(sample_data, tmp_path, cli):
    """kohya's DreamBooth folders: uncaptioned images in `10_sks gadget` train as "sks gadget". The doctor
    lists them as a note with that caption, does not call them uncaptioned nor warn that their captions are
    identical, and class_tokens (config or --class-tokens) wins over the folder name, in both."""
    (sample_data / "metadata.csv").unlink()
    images = sorted(sample_data.glob("*.png"))
    folder = sample_data / "10_sks gadget"
    folder.mkdir()
    for image in images[:4]:
        shutil.move(image, folder / image.name)
    (folder / images[0].with_suffix(".txt").name).write_text("neon style, written", encoding="utf-8")
    in_class = {folder / image.name for image in images[1:4]}
    for tokens, expected in ((None, "sks gadget"), ("tech phone", "tech phone")):
        data = DataConfig(train_data_dir=sample_data, resolution=64, min_bucket_reso=32, class_tokens=tokens)
        report, index = run_doctor(data), scan_dataset(data)
        flagged = {f.check: set(f.images) for f in report.findings}
        by_class = in_class if tokens is None else in_class | set(images[4:])
        assert flagged["class caption"] == set(index.class_captioned) == by_class
        trained = {item.path: item.caption for item in index.items}
        assert {report.captions[image] for image in by_class} == {trained[i] for i in by_class} == {expected}
        assert "identical caption" not in flagged
        uncaptioned = set(images[4:]) if tokens is None else set()
        assert flagged.get("no caption", set()) == uncaptioned == set(index.missing_captions)
    report = tmp_path / "report.html"
    args = ("doctor", str(sample_data), "-r", "64", "--report", str(report), "--lang", "zh")
    done = cli(*args, "--class-tokens", "tech phone")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "5 images without a caption train with the caption of their class 'tech phone'" in done.stderr
    assert "5 张图片没有描述，训练时用它们的类别词“tech phone”当描述" in report.read_text(encoding="utf-8")
