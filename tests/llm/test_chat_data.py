"""Chat data in every format people bring, as real files: the same conversations come out; encodings and
line ends are handled; a bad row is refused with its file, line and what to do."""

from __future__ import annotations

import json

import pytest
from llm_files import DIALOGUES, SYSTEM, write_messages_jsonl

from lora_scripts.data.chat import read_chats
from lora_scripts.errors import DataError

EXPECTED = [
    (
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": q},
        {"role": "assistant", "content": a},
    )
    for q, a in DIALOGUES[:2]
]


def _sharegpt(path):
    rows = [
        {
            "conversations": [
                {"from": "system", "value": SYSTEM},
                {"from": "human", "value": q},
                {"from": "gpt", "value": a},
            ]
        }
        for q, a in DIALOGUES[:2]
    ]
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


def _alpaca(path):
    rows = [{"instruction": q, "input": "", "output": a, "system": SYSTEM} for q, a in DIALOGUES[:2]]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")


def _csv(path):
    lines = ["question,answer,system"] + [f'"{q}","{a}",{SYSTEM}' for q, a in DIALOGUES[:2]]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")  # what Excel writes: BOM + CRLF


@pytest.mark.parametrize(
    "name,writer",
    [
        ("chats.jsonl", lambda p: write_messages_jsonl(p, DIALOGUES[:2])),
        ("share.json", _sharegpt),
        ("alpaca.jsonl", _alpaca),
        ("qa.csv", _csv),
    ],
)
def test_every_format_gives_the_same_conversations(tmp_path, name, writer):
    writer(tmp_path / name)
    convs = read_chats(tmp_path / name)
    assert [c.messages for c in convs] == EXPECTED


def test_forced_format_must_fit(tmp_path):
    write_messages_jsonl(tmp_path / "chats.jsonl", DIALOGUES[:1])
    with pytest.raises(DataError, match=r"line 1 of 'chats.jsonl' is not in the sharegpt format"):
        read_chats(tmp_path / "chats.jsonl", "sharegpt")


def test_gb18030_csv_is_read_and_said(tmp_path, caplog):
    lines = ["question,answer", "屏幕碎了还收吗？,您好！可以回收。", "营业到几点？,每天九点到九点。"]
    (tmp_path / "qa.csv").write_bytes("\r\n".join(lines).encode("gb18030"))
    caplog.set_level("INFO", logger="lora_scripts")
    convs = read_chats(tmp_path / "qa.csv", system_prompt="你好")
    assert convs[0].messages[0] == {"role": "system", "content": "你好"}
    assert convs[1].messages[1:] == (
        {"role": "user", "content": "营业到几点？"},
        {"role": "assistant", "content": "每天九点到九点。"},
    )
    assert "Read 'qa.csv' as GB18030 (Chinese Windows encoding)" in caplog.text


def test_a_folder_reads_every_file_in_order(tmp_path):
    write_messages_jsonl(tmp_path / "b.jsonl", DIALOGUES[2:3])
    write_messages_jsonl(tmp_path / "a.jsonl", DIALOGUES[:2])
    (tmp_path / "notes.txt").write_text("not data", encoding="utf-8")
    convs = read_chats(tmp_path)
    assert [c.where for c in convs] == ["line 1 of 'a.jsonl'", "line 2 of 'a.jsonl'", "line 1 of 'b.jsonl'"]


@pytest.mark.parametrize(
    "line,expected",
    [
        ('{"messages": [{"role": "user", "content": "hi"}', r"Line 2 of 'bad.jsonl' is not valid JSON"),
        ('{"text": "hi"}', r"line 2 of 'bad.jsonl' is not a known chat format \(its keys: text\)"),
        ('{"messages": [{"role": "robot", "content": "hi"}]}', r"Turn 1 of the line 2 .* no known role"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', r"line 2 of 'bad.jsonl' has no assistant turn"),
        (
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}',
            r"Turn 2 \(assistant\) of the line 2 of 'bad.jsonl' is empty",
        ),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, '
            '{"role": "assistant", "content": "c"}]}',
            "Turn 2 of the line 2 of 'bad.jsonl' is a system turn after the start",
        ),
    ],
)
def test_a_bad_row_is_refused_with_file_and_line(tmp_path, line, expected):
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    (tmp_path / "bad.jsonl").write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=expected) as err:
        read_chats(tmp_path / "bad.jsonl")
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_csv_without_the_columns_and_with_extra_cells(tmp_path):
    (tmp_path / "qa.csv").write_text("q,a\nhi,hello\n", encoding="utf-8")
    with pytest.raises(DataError, match="no question and answer columns .*header is q,a"):
        read_chats(tmp_path / "qa.csv")
    (tmp_path / "qa.csv").write_text("question,answer\nhi,hello, and more\n", encoding="utf-8")
    with pytest.raises(DataError, match="Line 2 of 'qa.csv' has more cells than the header.*double quotes"):
        read_chats(tmp_path / "qa.csv")


def test_text_in_neither_encoding_is_refused(tmp_path):
    (tmp_path / "x.jsonl").write_bytes(b'{"messages": "\xff\xfe\x80"}')
    with pytest.raises(DataError, match="'.*x.jsonl' is neither UTF-8 nor GB18030"):
        read_chats(tmp_path / "x.jsonl")
