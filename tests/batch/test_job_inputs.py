"""`lora-scripts batch`: what a designer's job file and catalogue can hold by mistake is named before any
image is made (an `overrides` key with a typo, a catalogue without rows), failures are said at the end, and
a catalogue saved by Chinese Excel is read."""

from __future__ import annotations

import csv
from pathlib import Path


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
