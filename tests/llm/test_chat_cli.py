"""`lora-scripts chat` through the real CLI: greedy replies that are exactly what transformers + peft
generate with the chat template, base vs LoRA side by side, and sentences for what is wrong."""

from __future__ import annotations

import pytest
import torch
from llm_files import write_messages_jsonl
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

QUESTION = "iPhone 13 回收多少钱？"


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_llm):
    from lora_scripts.config import build_config
    from lora_scripts.train.run import run_training

    tmp = tmp_path_factory.mktemp("chat")
    config = {
        "base_model": str(tiny_llm),
        "dataset": str(write_messages_jsonl(tmp / "c.jsonl")),
        "output_dir": str(tmp / "out"),
        "output_name": "cs_tone",
        "lora_rank": 8,
        "max_train_steps": 30,
        "learning_rate": 2e-2,
        "batch_size": 3,
        "device": "cpu",
        "save_precision": "float",
    }
    return run_training(build_config(config)).lora_path


def _greedy(model, tok, question: str) -> str:
    """What a transformers + peft user gets: the chat template, greedy generate, decode the new tokens."""
    ids = tok.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, do_sample=False, max_new_tokens=24, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_a_greedy_reply_is_what_peft_generates_and_deterministic(cli, adapter, tiny_llm):
    args = ("chat", "-l", str(adapter), QUESTION, "--temperature", "0", "--max-new-tokens", "24")
    first, second = cli(*args), cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), str(adapter)).eval()
    assert first.stdout.strip() == _greedy(peft, tok, QUESTION) == second.stdout.strip()


def test_compare_shows_the_base_and_the_lora_reply(cli, adapter, tiny_llm):
    done = cli(
        "chat",
        "-m",
        str(tiny_llm),
        "-l",
        str(adapter),
        QUESTION,
        "-t",
        "0",
        "--max-new-tokens",
        "24",
        "--compare",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    base_part, lora_part = done.stdout.strip().split("\n[lora] ")  # replies may hold line breaks
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    assert base_part == f"[base] {_greedy(base, tok, QUESTION)}"
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), str(adapter)).eval()
    assert lora_part == _greedy(peft, tok, QUESTION)
    assert base_part[7:] != lora_part


def test_a_folder_that_is_no_adapter_is_a_sentence(cli, tmp_path):
    done = cli("chat", "-l", str(tmp_path), "hi")
    assert done.returncode == 2
    assert "is not a PEFT adapter folder" in " ".join(done.stderr.split()) and "Traceback" not in done.stderr


def test_interactive_chat_streams_and_takes_commands(adapter, tiny_llm):
    import os
    import subprocess
    import sys

    lines = "\n".join([QUESTION, "/system 你是客服", "/reset", QUESTION, "/exit"]) + "\n"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lora_scripts.cli",
            "chat",
            "-l",
            str(adapter),
            "-t",
            "0",
            "--max-new-tokens",
            "24",
        ],
        input=lines,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "/reset clears the history" in done.stderr
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), str(adapter)).eval()
    plain = _greedy(peft, tok, QUESTION)
    assert plain in done.stdout  # the first answer, streamed
    ids = tok.apply_chat_template(
        [{"role": "system", "content": "你是客服"}, {"role": "user", "content": QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = peft.generate(input_ids=ids, do_sample=False, max_new_tokens=24, pad_token_id=tok.pad_token_id)
    with_system = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
    assert with_system in done.stdout.split(plain, 1)[1]  # the second answer used the new system message
