from __future__ import annotations

import random

import pytest

from lora_scripts.data import make_caption, read_metadata_csv, read_sidecar, repeats_from_folder
from lora_scripts.errors import DataError


def _csv(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "metadata.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_bom_and_quoted_commas(tmp_path):
    path = _csv(
        tmp_path, 'filename,prompt\r\na.png,"neon, metal, phone"\r\nsub\\b.jpg,plain\r\n', "utf-8-sig"
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_metadata_csv(path) == {"a.png": "neon, metal, phone", "sub/b.jpg": "plain"}


def test_csv_unquoted_extra_commas_belong_to_prompt(tmp_path):
    path = _csv(tmp_path, "filename,prompt\na.png,neon, metal, phone\nb.png, one tag \n")
    assert read_metadata_csv(path) == {"a.png": "neon, metal, phone", "b.png": "one tag"}


def test_csv_caption_column_extra_columns_and_empty_prompts(tmp_path):
    path = _csv(tmp_path, "Caption,File_Name,score\nred cup,a.png,5\n,b.png,1\n\n,,\nc.png\n")
    with pytest.raises(DataError, match="no file name"):
        read_metadata_csv(path)
    path = _csv(tmp_path, "text,filename,score\nred cup,a.png,5\n,b.png,1\n\n,,\n")
    assert read_metadata_csv(path) == {"a.png": "red cup", "b.png": ""}


def test_csv_wrong_header(tmp_path):
    path = _csv(tmp_path, "image,description\na.png,cat\n")
    with pytest.raises(DataError, match=r"metadata\.csv.*'image,description'.*filename,prompt"):
        read_metadata_csv(path)


def test_csv_with_semicolons_says_so(tmp_path):
    """Excel in many locales saves `filename;prompt`: the separator, not the column names, is the fault."""
    path = _csv(tmp_path, "filename;prompt\na.png;neon, phone\n")
    with pytest.raises(DataError) as caught:
        read_metadata_csv(path)
    assert caught.value.message == (
        f"Metadata file '{path}' uses ';' between columns. Save it as a comma-separated CSV "
        "(in Excel: 'CSV UTF-8 (comma delimited)')."
    )


def test_csv_not_utf8(tmp_path):
    path = _csv(tmp_path, "filename,prompt\na.png,café crème\n", "cp1252")
    with pytest.raises(DataError, match="UTF-8"):
        read_metadata_csv(path)


def test_csv_empty_file(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_metadata_csv(_csv(tmp_path, "\n\n"))


def test_sidecar_caption(tmp_path):
    image = tmp_path / "cat.png"
    (tmp_path / "cat.txt").write_bytes("\ufeffa cat,\n sitting \n\n".encode())
    (tmp_path / "cat.caption").write_text("other")
    assert read_sidecar(image, ".txt") == "a cat, sitting"
    assert read_sidecar(image, "caption") == "other"
    assert read_sidecar(tmp_path / "dog.png", ".txt") is None


def test_sidecar_not_utf8(tmp_path):
    (tmp_path / "cat.txt").write_bytes("crème".encode("cp1252"))
    with pytest.raises(DataError, match=r"cat\.txt.*UTF-8"):
        read_sidecar(tmp_path / "cat.png", ".txt")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("10_tech phone", (10, "tech phone")),
        ("3_x_y", (3, "x_y")),
        ("phones", None),
        ("0_none", None),
        ("10_", None),
        ("_5", None),
    ],
)
def test_repeats_from_folder(name, expected):
    assert repeats_from_folder(name) == expected


def test_shuffle_keeps_first_tags(data_config, tmp_path):
    cfg = data_config(tmp_path, shuffle_caption=True, keep_tokens=2)
    caption = "sks, phone, a, b, c, d, e, f"
    rng = random.Random(0)
    results = {make_caption(caption, cfg, rng) for _ in range(30)}
    assert len(results) > 1
    for result in results:
        tags = result.split(", ")
        assert tags[:2] == ["sks", "phone"]
        assert sorted(tags[2:]) == ["a", "b", "c", "d", "e", "f"]


def test_caption_unchanged_without_shuffle_and_dropout(data_config, tmp_path):
    cfg = data_config(tmp_path)
    assert make_caption("b, a", cfg, random.Random(0)) == "b, a"


def test_caption_dropout(data_config, tmp_path):
    always = data_config(tmp_path, caption_dropout_rate=1.0)
    assert make_caption("a, b", always, random.Random(0)) == ""
    half = data_config(tmp_path, caption_dropout_rate=0.5)
    rng = random.Random(1)
    dropped = sum(make_caption("a", half, rng) == "" for _ in range(400))
    assert 120 < dropped < 280


def test_shuffle_splits_on_chinese_commas(data_config, tmp_path):
    cfg = data_config(tmp_path, shuffle_caption=True, keep_tokens=1)
    rng = random.Random(0)
    results = {make_caption("霓虹风格，手机、金属，极简, 蓝色", cfg, rng) for _ in range(30)}
    assert len(results) > 1
    for result in results:
        tags = result.split(", ")
        assert tags[0] == "霓虹风格" and sorted(tags[1:]) == sorted(["手机", "金属", "极简", "蓝色"])


def test_split_tags():
    from lora_scripts.data.captions import split_tags

    assert split_tags(" a, b ，c、 d,, ") == ["a", "b", "c", "d"]
    assert split_tags("") == []
