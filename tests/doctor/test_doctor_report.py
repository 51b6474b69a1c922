"""The doctor's report as a designer reads it: what to fix first, each flagged image's caption beside its
thumbnail, and a line on what every number means. The HTML is opened and read back, not just written."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lora_scripts.config.data import DataConfig
from lora_scripts.doctor import run_doctor
from lora_scripts.doctor.clutter import CLUTTER_FLAG

GROUPS = ("Must fix before training", "Worth fixing", "Notes")


class Cards(HTMLParser):
    """Each element with class 'card': its text and whether it holds an <img> or the unreadable placeholder,
    plus the text of every <h2>, in document order."""

    def __init__(self):
        super().__init__()
        self.cards: list[dict] = []
        self.headings: list[str] = []
        self._depth = 0  # open elements inside the current card
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self._depth:
            self._depth += tag not in ("img", "br")
            self.cards[-1]["img"] |= tag == "img" and attrs.get("src", "").startswith("data:image/jpeg")
        elif "card" in (attrs.get("class") or "").split():
            self.cards.append({"text": "", "img": False})
            self._depth = 1
        if tag == "h2":
            self._heading = []

    def handle_endtag(self, tag):
        if self._depth and tag not in ("img", "br"):
            self._depth -= 1
        if tag == "h2" and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._depth:
            self.cards[-1]["text"] += data
        if self._heading is not None:
            self._heading.append(data)


@pytest.fixture
def written(defect_folder, tmp_path):
    """The defect folder with its metadata.csv saved by Excel on Chinese Windows (GBK): a note."""
    csv_path = defect_folder / "metadata.csv"
    text = csv_path.read_text(encoding="utf-8").replace("tchphn, wide", "tchphn, wide, 宽屏")
    csv_path.write_bytes(text.encode("gbk"))
    report = run_doctor(DataConfig(train_data_dir=defect_folder, resolution=64, trigger_word="tchphn"))
    path = report.write_html(tmp_path / "report.html")
    parser = Cards()
    parser.feed(path.read_text(encoding="utf-8"))
    return report, path.read_text(encoding="utf-8"), parser


def _card(parser: Cards, name: str) -> dict:
    return next(card for card in parser.cards if name in card["text"])


def test_each_flagged_image_shows_its_caption_beside_its_thumbnail(written):
    _, _, parser = written
    noisy = _card(parser, "noisy.png")
    assert noisy["img"] and "tchphn, noise" in noisy["text"]
    long = _card(parser, "img_02.png")
    assert long["img"] and "detail number 11 of the glowing device" in long["text"]
    assert "empty caption" in _card(parser, "img_03.png")["text"]  # an empty one says so
    assert "no caption" in _card(parser, "truncated.jpg")["text"]  # and a missing one too
    assert "tchphn, wide, 宽屏" in _card(parser, "wide.png")["text"]


def test_every_score_shown_is_explained(written):
    _, html, parser = written
    noisy = _card(parser, "noisy.png")
    assert "clutter 0.9" in noisy["text"] and "busy" in noisy["text"]
    assert re.search(r"clutter 0\.\d\d \(plain\)", _card(parser, "img_01.png")["text"])
    # one line saying what the clutter number measures, its range, and from where it counts as high
    assert "how busy the background" in html and "0 = plain backdrop" in html and "1 = busy" in html
    assert f"{CLUTTER_FLAG:.2f} or more" in html
    assert "tokens" in _card(parser, "img_02.png")["text"]
    assert "CLIP reads the first 75 tokens" in html


def test_findings_are_grouped_errors_then_warnings_then_notes(written):
    report, html, parser = written
    assert [h.split(" (")[0] for h in parser.headings[:3]] == list(GROUPS)
    starts = [html.index(f"<h2>{group}") for group in GROUPS]
    assert starts == sorted(starts)
    errors, warnings, notes = html[starts[0] : starts[1]], html[starts[1] : starts[2]], html[starts[2] :]
    assert "cannot be read" in errors and "ghost.png" in errors and "Busy background" not in errors
    assert "Busy background" in warnings and "Trigger word" in warnings and "GB18030" not in warnings
    assert "GB18030" in notes
    assert len(report.errors) == 2 and len(report.notes) == 1


def test_terminal_summary_in_the_same_order_with_captions_and_the_explanation(written):
    report, _, _ = written
    text = report.summary()
    starts = [text.index(group) for group in GROUPS]
    assert starts == sorted(starts)
    assert text.count("ERROR:") == 2
    lines = text.splitlines()
    noisy = next(line for line in lines if "noisy.png" in line and "clutter" in line and "tchphn" in line)
    assert '"tchphn, noise"' in noisy
    assert any("how busy the background" in line for line in lines)
    assert any("img_03.png" in line and "empty caption" in line for line in lines)
    long = next(line for line in lines if line.strip().startswith("img_02.png") and "tokens]" in line)
    assert long.endswith('..."') and len(long) < 160  # the HTML has it in full


def test_cli_report_opens_with_the_captions(defect_folder, cli):
    done = cli("doctor", str(defect_folder), "--resolution", "64", "--trigger", "tchphn")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    html = Path(defect_folder / "doctor_report.html").read_text(encoding="utf-8")
    assert html.index("Must fix before training") < html.index("Worth fixing")
    assert "tchphn, neon laptop" in html


def test_cli_json_lists_each_finding_with_its_images(defect_folder, cli, tmp_path):
    """`doctor --json` (what the web UI shows on the thumbnails): the same findings as the report, images
    relative to the folder, written even when errors end the command with exit 2."""
    import json

    out = tmp_path / "findings.json"
    done = cli("doctor", str(defect_folder), "--resolution", "64", "--no-report", "--json", str(out))
    assert done.returncode == 2
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["num_images"] == 13
    errors = [f for f in data["findings"] if f["level"] == "error"]
    assert errors and any("truncated.jpg" in f["images"] for f in errors)
    assert all(not i.startswith("/") for f in data["findings"] for i in f["images"])
    long = next(f for f in data["findings"] if "img_02.png" in f["details"])
    assert "tokens" in long["details"]["img_02.png"]


def _visible_text(html: str) -> str:
    """The report's words as a reader sees them (tags, styles and thumbnails' data left out)."""
    html = re.sub(r"<style>.*?</style>|<[^>]+>", " ", html, flags=re.S)
    from html import unescape

    return unescape(html)


def test_cli_report_in_chinese_for_the_chinese_page(defect_folder, cli, tmp_path):
    """`doctor --lang zh` (what the Chinese web UI runs): headings, every finding, captions' placeholders and
    the numbers on the cards in Chinese; no English sentence of the same findings is left."""
    import json

    out = tmp_path / "findings.json"
    args = ("-r", "64", "--trigger", "tchphn", "--lang", "zh", "--json", str(out))
    done = cli("doctor", str(defect_folder), *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    html = (defect_folder / "doctor_report.html").read_text(encoding="utf-8")
    parser = Cards()
    parser.feed(html)
    findings = json.loads(out.read_text(encoding="utf-8"))["findings"]
    errors, warnings = (sum(f["level"] == level for f in findings) for level in ("error", "warning"))
    assert parser.headings[:2] == [f"训练前必须改 ({errors})", f"最好改一下 ({warnings})"]
    assert "数字是什么意思" in parser.headings
    text = _visible_text(html)
    for finding in findings:  # the English sentences (the terminal's and the JSON's) are not in the report
        assert finding["message"] not in text
        assert all(name in text for name in finding["images"][:3])  # the file names stay as they are
    assert "打不开" in _card(parser, "truncated.jpg")["text"]  # the unreadable image's placeholder
    assert re.search(r"\d+ 个词元", _card(parser, "img_02.png")["text"])
    assert re.search(r"杂乱度 [\d.]+（(很乱|干净|有些细节)）", text)
    assert "（没有描述）" in text and "(no caption)" not in text
    assert "（描述是空的）" in _card(parser, "img_03.png")["text"]  # the empty caption's placeholder
    assert "tokens" not in text and "clutter" not in text and "Must fix" not in text
    assert {"smaller than resolution", "extreme aspect ratio"} <= {f["check"] for f in findings}
    assert "短边小于 64（训练尺寸）" in text and "长边超过短边的 2.5 倍" in text  # their numbers, explained
    assert "张图片的短边小于训练尺寸 64 像素" in text and "张图片太扁或太长" in text  # and their sentences
    for english in ("width", "pixels", " files"):
        assert english not in text, text[text.index(english) - 200 : text.index(english) + 50]


def test_cli_report_language_typo_is_one_sentence_before_any_work(defect_folder, cli):
    done = cli("doctor", str(defect_folder), "--lang", "fr")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "--lang fr is not a report language" in done.stderr and "--lang zh" in done.stderr
    assert not (defect_folder / "doctor_report.html").exists()


def test_cli_bucket_no_upscale_and_a_resolution_training_refuses(tmp_path, painter, cli):
    """`doctor --bucket-no-upscale` checks as a training with that option: the small images are not
    enlarged, so not named; a resolution a training config may not have is one sentence before any work."""
    clean, _ = painter
    for i, size in enumerate([(96, 96), (100, 80)]):
        clean(i, size).save(tmp_path / f"small_{i}.png")
    plain = cli("doctor", str(tmp_path), "-r", "128", "--no-report", "--json", str(tmp_path / "a.json"))
    kept = cli(
        "doctor",
        str(tmp_path),
        "-r",
        "128",
        "--no-report",
        "--json",
        str(tmp_path / "b.json"),
        "--bucket-no-upscale",
    )
    assert plain.returncode == kept.returncode == 0, plain.stderr + kept.stderr
    checks = {
        name: {f["check"] for f in json.loads((tmp_path / name).read_text(encoding="utf-8"))["findings"]}
        for name in ("a.json", "b.json")
    }
    assert "smaller than resolution" in checks["a.json"] and "smaller than resolution" not in checks["b.json"]
    odd = cli("doctor", str(tmp_path), "-r", "500", "--no-report")
    assert odd.returncode == 2 and "Traceback" not in odd.stderr + odd.stdout
    assert "--resolution 500 is not valid: Input should be a multiple of 8" in odd.stderr, odd.stderr
    from lora_scripts.errors_zh import hint_zh

    assert "8 的倍数" in hint_zh(odd.stderr.removeprefix("Error: "))  # what to do, for a Chinese user
