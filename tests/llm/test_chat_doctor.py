"""The chat data doctor through the real CLI (every bad row, duplicates, order, tokens over max_seq_len, a
length histogram) and its warnings in the training log."""

from __future__ import annotations

import json

from llm_files import DIALOGUES, write_messages_jsonl, write_yaml
from transformers import AutoTokenizer

GOOD = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _line(record) -> str:
    return json.dumps(record, ensure_ascii=False)


def test_doctor_lists_every_bad_row_and_the_warnings(cli, tmp_path):
    rows = [
        _line(GOOD),
        '{"messages": [',  # line 2: not JSON
        _line({"messages": [{"role": "user", "content": "only a question"}]}),  # line 3: no reply
        _line(GOOD),  # line 4: a copy of line 1
        _line({"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]}),
        _line(
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    GOOD["messages"][1],
                ]
            }
        ),
    ]
    (tmp_path / "chats.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    done = cli("doctor", str(tmp_path / "chats.jsonl"))
    assert done.returncode == 2
    out = " ".join((done.stdout + done.stderr).split())
    assert "chats.jsonl': 3 conversations readable" in out
    assert "ERROR: Line 2 of 'chats.jsonl' is not valid JSON" in out
    assert "ERROR: The line 3 of 'chats.jsonl' has no assistant turn" in out
    assert "ERROR: Turn 1 (user) of the line 5 of 'chats.jsonl' is empty" in out
    assert "1 conversation repeats an earlier one exactly (line 4 of 'chats.jsonl')" in out
    assert "1 conversation has two user or two assistant turns in a row (line 6 of 'chats.jsonl')" in out
    assert "Lengths are in characters; give --model" in out


def test_doctor_counts_the_models_tokens_and_what_max_seq_len_cuts(cli, tiny_llm, tmp_path):
    path = write_messages_jsonl(tmp_path / "chats.jsonl")
    done = cli("doctor", str(path), "--model", str(tiny_llm), "--max-seq-len", "100")
    assert done.returncode == 0, done.stderr[-2000:]
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    lengths = []
    for line in path.read_text(encoding="utf-8").splitlines():
        ids = tok.apply_chat_template(json.loads(line)["messages"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
        lengths.append(len(ids))
    over = [n - 100 for n in lengths if n > 100]
    assert over  # the data has conversations over 100 tokens
    out = " ".join((done.stdout + done.stderr).split())
    assert f"are longer than max_seq_len 100: {sum(over)} tokens are cut off" in out or (
        len(over) == 1 and f"is longer than max_seq_len 100: {sum(over)} tokens are cut off" in out
    )
    assert "Length of the conversations in tokens" in out
    assert (
        f"shortest {min(lengths)}, median {sorted(lengths)[len(lengths) // 2]}, longest {max(lengths)}" in out
    )


def test_training_logs_the_doctors_warnings(cli, llm_config, tmp_path):
    data = write_messages_jsonl(tmp_path / "dup.jsonl", DIALOGUES + DIALOGUES[:1])
    config = {**llm_config, "dataset": str(data), "max_train_steps": 1}
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", config)))
    assert done.returncode == 0, done.stderr[-2000:]
    log = (tmp_path / "out" / "train.log").read_text(encoding="utf-8")
    assert "doctor: 1 conversation repeats an earlier one exactly (line 7 of 'dup.jsonl')" in log
