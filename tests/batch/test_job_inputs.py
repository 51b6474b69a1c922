"""`lora-scripts batch`: what a designer's job file and catalogue can hold by mistake is named before any
image is made (an `overrides` key with a typo, a catalogue without rows), failures are said at the end, and
a catalogue saved by Chinese Excel is read."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def read_index(out: Path) -> list[dict]:
    with open(out / "index.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_an_overrides_key_with_a_typo_is_refused_with_a_did_you_mean(cli, make_job, tmp_path):
    for key, meant in (("laptp", "laptop"), ("Laptop", "laptop"), ("phnoe", "phone")):
        job = make_job(by="category", overrides={key: {"loras": {"metal": 0.5}}})
        result = cli("batch", job)
        assert result.returncode == 2, result.stderr
        sentence = f"overrides key '{key}' matches no value of column 'category'; did you mean '{meant}'?"
        assert sentence in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()  # refused before any image


def test_an_overrides_key_no_row_has_yet_is_used_once_rows_have_it_and_said_once(cli, make_job, tmp_path):
    overrides = {"laptop": {"loras": {"metal": 0.5}}, "headphone": {"loras": {"metal": 0.3}}}
    job = make_job(by="category", overrides=overrides, images_per_item=1)
    result = cli("batch", job)
    assert result.returncode == 0, result.stderr
    warning = "overrides key 'headphone' matches no value of column 'category' in items.csv"
    assert result.stderr.count(warning) == 1 and result.stderr.count("overrides key") == 1
    loras = {r["id"]: r["loras"] for r in read_index(tmp_path / "out")}
    assert loras == {
        "AP-IP15": "<lora:tech_phone:0.8>",
        "SM-S24": "<lora:tech_phone:0.8>",
        "LN-X1C": "<lora:tech_phone:0.8> <lora:metal:0.5>",  # the laptop override is applied
    }


def test_a_catalogue_without_rows_is_refused_in_one_sentence(cli, make_job, tmp_path):
    job = make_job()
    items = tmp_path / "items.csv"
    header = "id,brand,model,category,colour"
    for text, sentence in (
        (header + "\n", "has no rows. Add one row per device model under the header."),
        ("", f"is empty. Add a header line (e.g. {header}) and one row per device model."),
    ):
        items.write_text(text, encoding="utf-8")
        result = cli("batch", job)
        assert result.returncode == 2, result.stderr
        assert f"The catalogue '{items}' {sentence}" in result.stderr and "Traceback" not in result.stderr
        assert "in the index" not in result.stderr and not (tmp_path / "out").exists()
    (tmp_path / "items.jsonl").write_text("\n\n", encoding="utf-8")
    result = cli("batch", make_job(items="items.jsonl"))
    assert result.returncode == 2 and "items.jsonl' has no rows. Add one line" in result.stderr


def test_the_last_line_says_how_many_images_failed_and_where_the_reasons_are(cli, make_job, tmp_path, rows):
    rows[1]["colour"] = "NaN"  # SM-S24 cannot be made: failed.csv, and the run still exits 0
    result = cli("batch", make_job(rows=rows))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"4 image(s) in the index; 2 image(s) failed: the reasons are in {out / 'failed.csv'}; "
        "fix them and run the same command again to make the rest"
    )
    with open(out / "failed.csv", encoding="utf-8") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == ["SM-S24", "SM-S24"]
    rows[1]["colour"] = "blue"  # filled in: made on the next run, nothing failed
    result = cli("batch", make_job(rows=rows))
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"6 image(s) in the index, none failed; see index.html in {out}"
    )


def test_a_value_of_the_wrong_kind_is_one_plain_sentence(cli, make_job, tmp_path):
    cases = [
        ({"images_per_item": "two"}, "'images_per_item' in {job} must be a whole number, not 'two'."),
        ({"images_per_item": 0}, "'images_per_item' in {job} must be at least 1, not 0."),
        ({"cfg": "high"}, "'cfg' in {job} must be a number, not 'high'."),
        ({"compile": "maybe"}, "'compile' in {job} must be true or false, not 'maybe'."),
        ({"precision": "fp8"}, "'precision' in {job} must be one of auto, fp32, fp16 or bf16, not 'fp8'."),
        (
            {"by": "category", "overrides": {"laptop": {"loras": {"metal": "half"}}}},
            "'overrides.laptop.loras.metal' in {job} must be a number, not 'half'.",
        ),
    ]
    for keys, sentence in cases:
        job = make_job(**keys)
        result = cli("batch", job)
        assert result.returncode == 2, result.stderr
        assert f"Error: {sentence.format(job=job)}" in result.stderr, result.stderr
        assert "Input should be" not in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_size_that_is_not_a_multiple_of_8_gets_the_nearest_multiples(cli, make_job, tmp_path):
    cases = [
        ({"width": 60}, "Image size 60x32 in {job} is not a multiple of 8. Set width to e.g. 56 or 64."),
        (
            {"width": 1000, "height": 770},
            "Image size 1000x770 in {job} is not a multiple of 8. Set height to e.g. 768 or 776.",
        ),
        (
            {"width": 4, "height": 510},
            "Image size 4x510 in {job} is not a multiple of 8. "
            "Set width to e.g. 8 and height to e.g. 504 or 512.",
        ),
    ]
    for keys, sentence in cases:
        job = make_job(**keys)
        result = cli("batch", job)
        assert result.returncode == 2 and f"Error: {sentence.format(job=job)}" in result.stderr, result.stderr
        assert "512x512" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_catalogue_saved_as_gbk_by_chinese_excel_is_read_and_said_once(cli, make_job, tmp_path):
    job = make_job(by="category", overrides={"笔记本": {"loras": {"metal": 0.5}}}, images_per_item=1)
    header = "id,brand,model,category,colour"
    lines = [
        "HW-M60,华为,Mate 60 Pro,手机,雅川青",
        "MI-14,小米,14 Ultra,手机,黑色",
        "LN-X1C,联想,ThinkPad X1,笔记本,黑色",
    ]
    data = "\r\n".join([header, *lines]).encode("gbk")  # what Excel on Chinese Windows saves as "CSV"
    (tmp_path / "items.csv").write_bytes(data)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result = cli("batch", job)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Read 'items.csv' as GB18030 (Chinese Windows encoding)") == 1
    rows = read_index(tmp_path / "out")  # written as UTF-8, as every file the job writes
    assert [(r["prompt"], r["loras"], r["file"]) for r in rows] == [
        (
            "<lora:tech_phone:0.8> 华为 Mate 60 Pro, 雅川青, neon style",
            "<lora:tech_phone:0.8>",
            "images/手机/HW-M60_0.png",
        ),
        (
            "<lora:tech_phone:0.8> 小米 14 Ultra, 黑色, neon style",
            "<lora:tech_phone:0.8>",
            "images/手机/MI-14_0.png",
        ),
        (
            "<lora:tech_phone:0.8> <lora:metal:0.5> 联想 ThinkPad X1, 黑色, neon style",
            "<lora:tech_phone:0.8> <lora:metal:0.5>",
            "images/笔记本/LN-X1C_0.png",
        ),
    ]
    other = make_job(output_dir="other")  # cp1252 ("Crème") is not taken for Chinese: refused in one sentence
    (tmp_path / "items.csv").write_bytes(header.encode() + b"\r\nA1,Cr\xe8me\x81\x7f,X,phone,red\r\n")
    refused = cli("batch", other)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        "items.csv' is neither UTF-8 nor GB18030 (Chinese Windows) text. Save it as UTF-8" in refused.stderr
    )
