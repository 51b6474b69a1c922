"""Chat samples during training: each sample prompt answered greedily by the base model and by the LoRA at
the scheduled steps, in samples/stepNNNNNN.json, TensorBoard and report.html; checked against what
transformers + peft generate with the same system message."""

from __future__ import annotations

import json

import pytest
import torch
from llm_files import SYSTEM, write_yaml
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from lora_scripts.models.llm import SAMPLE_TOKENS

PROMPT = "iPhone 13 回收多少钱？"


def _greedy(model, tok, prompt: str) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    ids = tok.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, do_sample=False, max_new_tokens=SAMPLE_TOKENS, pad_token_id=tok.pad_token_id
        )
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def test_sample_replies_of_base_and_lora_at_each_checkpoint(cli, llm_config, tiny_llm, tmp_path):
    config = {
        **llm_config,
        "system_prompt": SYSTEM,
        "sample_prompts": [PROMPT],
        "sample_every_n_steps": 2,
        "save_precision": "float",
        "learning_rate": 3e-2,
    }
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", config)))
    assert done.returncode == 0, done.stderr[-3000:]
    samples = tmp_path / "out" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["step000002.json", "step000004.json"]
    final = json.loads((samples / "step000004.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    base = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    lora = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llm), str(tmp_path / "out" / "cs_tone")
    )
    assert final == [
        {"prompt": PROMPT, "base": _greedy(base, tok, PROMPT), "lora": _greedy(lora.eval(), tok, PROMPT)}
    ]
    assert final[0]["base"] != final[0]["lora"]
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h3>step 2</h3>" in report and "<h3>step 4</h3>" in report and PROMPT in report


def test_image_sample_settings_are_refused_on_the_llm_route(llm_config):
    from lora_scripts.config import build_config
    from lora_scripts.errors import ConfigError

    with pytest.raises(ConfigError, match="'sample_sampler'.* is an image-route key"):
        build_config({**llm_config, "sample_prompts": ["hi"], "sample_sampler": "DDIM"})
