"""Tokenising with the chat template as at inference, the assistant-only loss mask, and packing that leaves
the loss unchanged, on real tiny Llama/Qwen2 models and their tokenizers."""

from __future__ import annotations

import pytest
import torch
from llm_files import SYSTEM, write_messages_jsonl
from transformers import AutoModelForCausalLM, AutoTokenizer

from lora_scripts.data.chat import read_chats
from lora_scripts.data.chat_dataset import ChatRow, collate
from lora_scripts.data.chat_tokens import CHATML, IGNORE, pack, resolve_template, tokenize_chat
from lora_scripts.errors import ConfigError

TWO_TURNS = {
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "iPhone 12 多少钱？"},
        {"role": "assistant", "content": "您好！估价 1800 元。"},
        {"role": "user", "content": "能再高点吗？"},
        {"role": "assistant", "content": "抱歉，这已是最高价。"},
    ]
}


@pytest.fixture()
def conversations(tmp_path):
    import json

    path = write_messages_jsonl(tmp_path / "c.jsonl")
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(TWO_TURNS, ensure_ascii=False) + "\n")
    return read_chats(path)


def test_ids_are_what_apply_chat_template_gives_at_inference(tiny_llm, conversations):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    for conv in conversations:
        sample = tokenize_chat(conv, tok, tok.chat_template, "assistant", 4096)
        served = tok.apply_chat_template(conv.as_list(), tokenize=True, return_dict=True)["input_ids"]
        assert list(sample.input_ids) == list(served)


def test_labels_train_only_the_assistant_replies(tiny_llm, conversations):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    sample = tokenize_chat(conversations[-1], tok, tok.chat_template, "assistant", 4096)
    trained = [t for t in sample.labels if t != IGNORE]
    assert tok.decode(trained) == "您好！估价 1800 元。<|im_end|>\n抱歉，这已是最高价。<|im_end|>\n"
    masked = tok.decode([i for i, t in zip(sample.input_ids, sample.labels, strict=True) if t == IGNORE])
    for text in (SYSTEM, "iPhone 12 多少钱？", "能再高点吗？", "<|im_start|>user", "<|im_start|>system"):
        assert text in masked and text not in tok.decode(trained)
    # every trained position carries its own token (a label is the token itself, shifted by the model)
    assert all(t in (IGNORE, i) for i, t in zip(sample.input_ids, sample.labels, strict=True))


def test_train_on_all_trains_every_token_but_the_first(tiny_llm, conversations):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    sample = tokenize_chat(conversations[0], tok, tok.chat_template, "all", 4096)
    assert sample.labels[0] == IGNORE and list(sample.labels[1:]) == list(sample.input_ids[1:])


def test_long_conversations_are_cut_at_max_seq_len(tiny_llm, conversations):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    full = tokenize_chat(conversations[0], tok, tok.chat_template, "assistant", 4096)
    cut = tokenize_chat(conversations[0], tok, tok.chat_template, "assistant", 40)
    assert len(cut) == 40 and cut.cut == len(full) - 40 and cut.input_ids == full.input_ids[:40]


def test_templates_by_name_file_and_a_tokenizer_without_one(tiny_llm, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    assert resolve_template("ChatML", tok, "m") == CHATML
    (tmp_path / "t.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    assert resolve_template(str(tmp_path / "t.jinja"), tok, "m") == "{{ messages[0]['content'] }}"
    tok.chat_template = None
    with pytest.raises(ConfigError, match="The tokenizer of 'm' has no chat template"):
        resolve_template("auto", tok, "m")
    with pytest.raises(ConfigError, match="chat_template 'llama9' is neither a known name nor a file"):
        resolve_template("llama9", tok, "m")


def test_a_template_that_rewrites_earlier_turns_is_refused(tiny_llm, conversations):
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    # like Qwen3's: the last assistant turn is rendered differently from earlier ones
    odd = CHATML.replace("message['content']", "(message['content'] if loop.last else 'x')")
    with pytest.raises(ConfigError, match="renders the start of a conversation differently.*train_on: all"):
        tokenize_chat(conversations[-1], tok, odd, "assistant", 4096)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("fixture", ["tiny_llm", "tiny_qwen2"])
def test_packed_and_unpacked_losses_are_equal(request, fixture, attention, conversations):
    folder = request.getfixturevalue(fixture)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention).eval()
    samples = [tokenize_chat(c, tok, tok.chat_template, "assistant", 512) for c in conversations]
    rows = pack(samples, 512)
    assert len(rows) < len(samples) and max(sum(len(s) for s in r) for r in rows) <= 512
    assert sorted(s.input_ids for r in rows for s in r) == sorted(s.input_ids for s in samples)
    with torch.no_grad():
        packed = model(**collate([ChatRow(r) for r in rows], tok.pad_token_id), use_cache=False).loss
        total, count = 0.0, 0  # each conversation alone, weighted by its trained tokens
        for s in samples:
            labels = torch.tensor([s.labels])
            alone = model(input_ids=torch.tensor([s.input_ids]), labels=labels).loss
            n = int((labels[:, 1:] != IGNORE).sum())
            total, count = total + float(alone) * n, count + n
    assert abs(float(packed) - total / count) < 1e-5
