"""The doctor finds every planted defect, says what to do, and writes an HTML report with thumbnails."""

from __future__ import annotations

import pytest
from PIL import Image

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor
from lora_scripts.doctor.clutter import CLUTTER_FLAG, clutter_score
from lora_scripts.errors import DataError


def by_check(report) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).update(p.name for p in finding.images)
    return found


@pytest.fixture
def report(defect_folder):
    return run_doctor(DataConfig(train_data_dir=defect_folder, resolution=64, trigger_word="tchphn"))


def test_planted_image_defects(report):
    found = by_check(report)
    assert found["unreadable"] == {"truncated.jpg", "empty.png"}
    assert found["exact duplicate"] == {"img_00.png", "dup_of_00.png"}
    assert found["near-duplicate"] == {"img_01.png", "near_01.jpg"}
    assert found["smaller than resolution"] == {"tiny.png"}
    assert found["extreme aspect ratio"] == {"wide.png"}
    assert found["cluttered"] == {"noisy.png"}


def test_planted_caption_defects(report):
    found = by_check(report)
    assert found["no caption"] == {"truncated.jpg", "empty.png"}
    assert found["caption over 75 tokens"] == {"img_02.png"}
    assert found["empty caption"] == {"img_03.png"}
    assert found["identical caption"] == {"img_00.png", "dup_of_00.png", "img_04.png", "img_05.png"}
    assert found["no trigger word"] == {"img_03.png", "img_04.png", "img_05.png"}
    orphan = next(f for f in report.findings if f.check == "caption without image")
    assert orphan.level == "error" and "ghost.png" in orphan.message


def test_errors_and_warnings_are_sentences(report):
    assert len(report.errors) == 2  # unreadable images, a csv row without image
    assert any("truncated.jpg" in e and "empty" in e for e in report.errors)
    assert all(message.endswith(("them", "captions")) or ";" in message for message in report.warnings)
    assert report.tag_frequency["tchphn"] == 8  # the orphan row does not count
    with pytest.raises(DataError, match="found a problem") as info:
        report.raise_for_errors("Set doctor: warn to train anyway")
    assert "doctor: warn" in str(info.value) and "1 more" in str(info.value)


def test_summary_and_html_report(report, tmp_path):
    text = report.summary()
    assert text.count("ERROR:") == 2 and "Most frequent tags: tchphn (8)" in text
    html_path = report.write_html(tmp_path / "out" / "report.html")
    html = html_path.read_text(encoding="utf-8")
    cards = sum(len(finding.images) for finding in report.findings)  # under each finding, its images
    assert html.count("<figure class='card'>") == cards
    unreadable = html.count("<div class='missing'>cannot be read</div>")  # the two unreadable: placeholders
    assert unreadable == 4 and html.count("data:image/jpeg;base64,") == cards - unreadable
    assert "noisy.png" in html


def test_clean_folder_with_sidecars(clean_folder):
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64, trigger_word="tchphn"))
    assert report.findings == [] and report.num_captioned == 4
    assert report.caption_source == ".txt files"
    assert "No problems found." in report.summary()
    report.raise_for_errors()


def test_sidecar_orphans_and_missing(clean_folder):
    (clean_folder / "ok_0.txt").unlink()
    (clean_folder / "lost.txt").write_text("no image here", encoding="utf-8")
    found = by_check(run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64)))
    assert found["no caption"] == {"ok_0.png"}
    assert "caption without image" in found


def test_small_images_use_the_resolution(clean_folder):
    found = by_check(run_doctor(DataConfig(train_data_dir=clean_folder, resolution=512)))
    assert len(found["smaller than resolution"]) == 4


def test_unreadable_metadata_is_an_error_not_a_crash(clean_folder):
    (clean_folder / "metadata.csv").write_text("name,words\na.png,x\n", encoding="utf-8")
    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64))
    assert any("filename,prompt" in e for e in report.errors)


def test_no_images_or_no_folder(tmp_path):
    with pytest.raises(DataError, match="No images"):
        run_doctor(DataConfig(train_data_dir=tmp_path, resolution=64))
    with pytest.raises(DataError, match="does not exist"):
        run_doctor(DataConfig(train_data_dir=tmp_path / "missing", resolution=64))


def test_clutter_score_orders_plain_below_busy(painter):
    clean_image, noise_image = painter
    plain = clutter_score(Image.new("RGB", (64, 64), "white"))
    assert plain == 0.0
    assert clutter_score(clean_image(1)) < CLUTTER_FLAG <= clutter_score(noise_image())


def test_cli_doctor(defect_folder, run_cli):
    done = run_cli("doctor", str(defect_folder), "--resolution", "64", "--trigger", "tchphn")
    assert done.returncode == 2
    assert "truncated.jpg" in done.stderr and "near_01.jpg" in done.stderr
    assert (defect_folder / "doctor_report.html").is_file()
    assert "Traceback" not in done.stderr


def test_unwritable_report_is_a_sentence(clean_folder):
    from lora_scripts.errors import OutputError

    report = run_doctor(DataConfig(train_data_dir=clean_folder, resolution=64))
    with pytest.raises(OutputError, match="--no-report"):
        report.write_html(clean_folder / "ok_0.png" / "report.html")


def test_bucket_no_upscale_images_are_not_called_upscaled(tmp_path, painter, caplog):
    """bucket_no_upscale gives a small image a bucket of its own size: training never enlarges it, so the
    doctor (and training's doctor) does not warn; a large strip is only made smaller (kohya's rule, which
    ends in a division by zero there: here its short side is one step); a sliver's side under one step
    (bucket_reso_steps) is made one step, so that one is enlarged."""
    from lora_scripts.config.data import DataConfig
    from lora_scripts.train.run import check_dataset

    clean, _ = painter
    for i, size in enumerate([(96, 96), (100, 80), (80, 112)]):
        clean(i, size).save(tmp_path / f"small_{i}.png")
    clean(9, (1200, 40)).save(tmp_path / "strip.png")  # area > 128²: 960x32, made smaller
    clean(8, (200, 24)).save(tmp_path / "sliver.png")  # 24 < 32: its bucket is 192x32, 1.33 times larger
    buckets = {"resolution": 128, "min_bucket_reso": 64, "max_bucket_reso": 256, "bucket_reso_steps": 32}
    data = DataConfig(train_data_dir=tmp_path, bucket_no_upscale=True, doctor="warn", **buckets)
    names = {"small_0.png", "small_1.png", "small_2.png", "strip.png"}
    plain = DataConfig(train_data_dir=tmp_path, resolution=128)
    assert by_check(run_doctor(plain))["smaller than resolution"] == {*names, "sliver.png"}
    assert by_check(run_doctor(data))["smaller than resolution"] == {"sliver.png"}
    for other in ({"bucket_no_upscale": False}, {"enable_bucket": False}):  # then they are enlarged
        enlarged = data.model_copy(update=other)
        assert by_check(run_doctor(enlarged))["smaller than resolution"] >= names
    (tmp_path / "sliver.png").unlink()
    with caplog.at_level("WARNING", logger="lora_scripts.train.run"):
        check_dataset(data)
        assert "upscaled" not in caplog.text
        check_dataset(data.model_copy(update={"bucket_no_upscale": False}))
    assert "4 images will be upscaled" in caplog.text
