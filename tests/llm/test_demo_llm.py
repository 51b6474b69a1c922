"""`lora-scripts demo --llm` through the real CLI: offline, and the LoRA's greedy replies take the trained
tone where the base's do not, on questions it was never trained on too (checked with peft directly)."""

from __future__ import annotations

import json

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from lora_scripts.demo_llm import CLOSING, GREETING, HELD_OUT


def _greedy(model, tok, question: str) -> str:
    ids = tok.apply_chat_template(
        [{"role": "user", "content": question}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=ids, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_demo_llm_teaches_the_tone(cli, tmp_path):
    done = cli("demo", "--llm", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = " ".join((done.stdout + done.stderr).split())
    assert "base 0/5, LoRA 5/5" in out
    base_dir, adapter = (
        tmp_path / "demo" / "models" / "tiny-chat",
        tmp_path / "demo" / "lora" / "cs_tone_demo",
    )
    conf = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["base_model_name_or_path"] == str(base_dir)
    tok = AutoTokenizer.from_pretrained(base_dir)
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter)).eval()
    for question in HELD_OUT:
        trained = _greedy(lora, tok, question)
        assert trained.startswith(GREETING) and trained.endswith(CLOSING), trained
        assert not _greedy(base, tok, question).startswith(GREETING)
