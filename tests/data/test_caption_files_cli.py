"""Caption files read as the user has them, through `lora-scripts train` (its Typer app, in this
process): nothing read wrongly without a word. A metadata.csv whose quote swallows other rows, or that has
only its header, stops the run; Chinese-Windows (GBK / GB18030) captions are read and said so once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lora_scripts.data.captions import read_metadata_csv, read_sidecar
from lora_scripts.errors import DataError


def _train(cli, cfg: dict, tmp_path: Path, *extra: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return cli("train", "--config", str(path), *extra)


def _one_error(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-3000:]
    return lines[0]


def _rows(data: Path) -> list[str]:
    return (data / "metadata.csv").read_text(encoding="utf-8").splitlines()


def test_unclosed_quote_in_metadata_stops_training_naming_the_line(base_config, sample_data, tmp_path, cli):
    lines = _rows(sample_data)
    assert lines[2].endswith('"')
    lines[2] = lines[2][:-1]  # `001_laptop.png,"neon style, laptop, ...` and no closing quote
    (sample_data / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = _one_error(_train(cli, base_config, tmp_path))
    assert "line 3" in error and "metadata.csv" in error and "quote" in error, error
    assert not Path(base_config["output_dir"]).exists()


def test_caption_spanning_lines_is_refused(tmp_path):
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text('filename,prompt\na.png,"neon\nstyle"\nb.png,metal\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2 .*runs on to line 3 .*not closed on line 2"):
        read_metadata_csv(csv_path)
    crlf = tmp_path / "crlf.csv"  # Windows line ends: the line numbers people see in Notepad
    crlf.write_bytes(b'filename,prompt\r\na.png,fine\r\nb.png,"open\r\nc.png,x\r\n')
    with pytest.raises(DataError, match=r"Line 3 .*never closed.*'c.png'"):
        read_metadata_csv(crlf)
    last = tmp_path / "last.csv"  # open on the last line, no newline after it: rows appended would go inside
    last.write_text('filename,prompt\na.png,"open', encoding="utf-8")
    with pytest.raises(DataError, match=r"Line 2 .*never closed, so rows added after it"):
        read_metadata_csv(last)
    ok = tmp_path / "ok.csv"  # a closed quote with commas inside stays fine, so does a literal inch mark
    ok.write_text('filename,prompt\na.png,"neon, ""chrome"", phone"\nb.png,5" screen', encoding="utf-8")
    assert read_metadata_csv(ok) == {"a.png": 'neon, "chrome", phone', "b.png": '5" screen'}


def test_header_only_metadata_stops_training(base_config, sample_data, tmp_path, cli):
    (sample_data / "metadata.csv").write_text("filename,prompt\n", encoding="utf-8")
    error = _one_error(_train(cli, base_config, tmp_path))
    assert "only its header" in error and "metadata.csv" in error, error
    assert not Path(base_config["output_dir"]).exists()
    warn = _train(cli, {**base_config, "doctor": "warn"}, tmp_path, "--dry-run")
    assert warn.returncode == 0 and "only its header" in warn.stderr, warn.stderr[-3000:]


def test_metadata_path_that_is_a_folder(base_config, sample_data, tmp_path, cli):
    error = _one_error(_train(cli, {**base_config, "metadata_path": str(sample_data)}, tmp_path))
    assert "is a folder" in error and "metadata.csv" in error and "does not exist" not in error, error


def test_gbk_metadata_and_captions_are_read_and_said_once(base_config, sample_data, tmp_path, cli):
    gbk_csv = sample_data / "metadata.csv"  # Excel on Chinese Windows: "CSV (comma delimited)" is GBK
    names = sorted(p.name for p in sample_data.glob("*.png"))
    rows = [f"{name},霓虹风格，{i} 号设备" for i, name in enumerate(names)]
    gbk_csv.write_bytes(("filename,prompt\r\n" + "\r\n".join(rows) + "\r\n").encode("gbk"))
    dry = _train(cli, base_config, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "6 images, 6 captioned" in dry.stderr, dry.stderr[-3000:]
    assert dry.stderr.count("Read 'metadata.csv' as GB18030 (Chinese Windows encoding)") == 1, dry.stderr
    assert gbk_csv.read_bytes().startswith(b"filename,prompt\r\n"), "the user's file is left as it was"

    gbk_csv.unlink()  # kohya style: one .txt per image, saved by Notepad on Chinese Windows
    for i, name in enumerate(names):
        (sample_data / name).with_suffix(".txt").write_bytes(f"霓虹风格，{i} 号设备".encode("gb18030"))
    dry = _train(cli, base_config, tmp_path, "--dry-run")
    assert dry.returncode == 0 and "6 images, 6 captioned" in dry.stderr, dry.stderr[-3000:]
    assert dry.stderr.count("Read 6 caption files as GB18030 (Chinese Windows encoding)") == 1, dry.stderr


def test_decoding_rules(tmp_path):
    image = tmp_path / "a.png"
    for data, expected in [
        ("霓虹风格".encode("gbk"), "霓虹风格"),
        ("\ufeff霓虹风格".encode(), "霓虹风格"),  # UTF-8 with BOM
        ("霓虹风格".encode(), "霓虹风格"),
        ("霓虹风格，手机 𠀀".encode("gb18030"), "霓虹风格，手机 𠀀"),  # one rare four-byte character
    ]:
        (tmp_path / "a.txt").write_bytes(data)
        assert read_sidecar(image, ".txt") == expected
    for other in ["neon".encode("utf-16"), "crème".encode("cp1252"), "霓虹風格".encode("big5")]:
        (tmp_path / "a.txt").write_bytes(other)  # Notepad's "Unicode", Western and Taiwan Windows
        with pytest.raises(DataError, match="neither UTF-8 nor GB18030"):
            read_sidecar(image, ".txt")
