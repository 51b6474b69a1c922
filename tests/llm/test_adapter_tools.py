"""`lora inspect`, `lora merge` and `lora export` on PEFT adapter folders, through the real CLI: the merged
model against base + adapter (max abs diff), the exported rsLoRA adapter against llama.cpp's scaling."""

from __future__ import annotations

import json
import math

import pytest
import torch
from llm_files import write_messages_jsonl
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

IDS = torch.tensor([[1, 20, 30, 40, 50, 60, 2]])


@pytest.fixture(scope="module")
def rslora_adapter(tmp_path_factory, tiny_llm):
    from lora_scripts.config import build_config
    from lora_scripts.train.run import run_training

    tmp = tmp_path_factory.mktemp("tools")
    config = {
        "base_model": str(tiny_llm),
        "dataset": str(write_messages_jsonl(tmp / "c.jsonl")),
        "output_dir": str(tmp / "out"),
        "output_name": "cs_tone",
        "lora_rank": 16,
        "lora_alpha": 8,
        "use_rslora": True,
        "max_train_steps": 4,
        "learning_rate": 1e-2,
        "device": "cpu",
        "save_precision": "float",
        "training_comment": "tone of the support desk",
    }
    return run_training(build_config(config)).lora_path


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=IDS).logits


def test_inspect_describes_an_adapter_folder(cli, rslora_adapter, tiny_llm):
    done = cli("lora", "inspect", str(rslora_adapter), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["kind"] == "PEFT LORA adapter (CAUSAL_LM)" and report["base_model"] == str(tiny_llm)
    assert report["r"] == 16 and report["lora_alpha"] == 8 and report["use_rslora"] is True
    assert report["modules"] == 14 and report["per_target"]["q_proj"] == 2 and not report["other_tensors"]
    assert report["comment"] == "tone of the support desk"  # training_comment, in the weights' metadata
    text = cli("lora", "inspect", str(rslora_adapter)).stdout
    assert "rsLoRA: llama.cpp ignores it; use `lora export` first" in " ".join(text.split())
    assert "tone of the support desk" in text


def test_merge_writes_a_model_with_the_adapter_baked_in(cli, rslora_adapter, tiny_llm, tmp_path):
    out = tmp_path / "merged"
    done = cli("lora", "merge", str(tiny_llm), str(rslora_adapter), "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    merged = AutoModelForCausalLM.from_pretrained(out)
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llm), str(rslora_adapter)
    )
    base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    assert (_logits(merged) - _logits(with_adapter)).abs().max() < 1e-5
    assert (_logits(merged) - _logits(base)).abs().max() > 1e-3
    assert (
        AutoTokenizer.from_pretrained(out).chat_template
        == AutoTokenizer.from_pretrained(tiny_llm).chat_template
    )
    again = cli("lora", "merge", str(tiny_llm), str(rslora_adapter), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_export_folds_rslora_into_alpha_for_llama_cpp(cli, rslora_adapter, tiny_llm, tmp_path):
    out = tmp_path / "exported"
    done = cli("lora", "export", str(rslora_adapter), "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    conf = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["use_rslora"] is False
    # llama.cpp's scale is lora_alpha / r; rsLoRA's was alpha / sqrt(r)
    assert math.isclose(conf["lora_alpha"] / conf["r"], 8 / math.sqrt(16))
    exported = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), str(out))
    original = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), str(rslora_adapter))
    assert (_logits(exported) - _logits(original)).abs().max() < 1e-6
