"""The adapter folder against the rules of the servers that load it, as their code states them:

- vLLM (vllm/lora/peft_helper.py PEFTHelper.from_dict + _validate_features; vllm/lora/utils.py
  parse_fine_tuned_lora_name): r, lora_alpha and target_modules present; no modules_to_save; no DoRA;
  every tensor `base_model.model.<module>.lora_A.weight` / `.lora_B.weight`, the module's last name one of
  the model's LoRA-capable linear layers.
- llama.cpp (convert_lora_to_gguf.py): adapter_model.safetensors + adapter_config.json with lora_alpha and
  base_model_name_or_path (a config AutoConfig can read); every tensor a lora_A or lora_B weight (anything
  else, embeddings included, stops the conversion); `name.replace("base_model.model.", "")` with
  `.lora_A.weight` -> `.weight` is a tensor of the base model; each one has both A and B. It scales by
  lora_alpha / r and reads no use_rslora.
"""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoConfig

VLLM_REQUIRED = {"r", "lora_alpha", "target_modules"}
LLAMA_LINEAR = {
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
}  # vLLM's Llama/Qwen2


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_llm):
    from llm_files import write_messages_jsonl

    from lora_scripts.config import build_config
    from lora_scripts.train.run import run_training

    tmp = tmp_path_factory.mktemp("adapter")
    config = {
        "base_model": str(tiny_llm),
        "dataset": str(write_messages_jsonl(tmp / "c.jsonl")),
        "output_dir": str(tmp / "out"),
        "output_name": "cs_tone",
        "lora_rank": 4,
        "max_train_steps": 2,
        "max_seq_len": 128,
        "device": "cpu",
    }
    return run_training(build_config(config)).lora_path


def _vllm_module(name: str) -> str:
    """vLLM's parse_fine_tuned_lora_name for a lora_A/lora_B weight (raises like vLLM on anything else)."""
    parts = name.split(".")
    if parts[:2] == ["base_model", "model"] and parts[-1] == "weight" and parts[-2] in ("lora_A", "lora_B"):
        return ".".join(parts[2:-2])
    raise ValueError(f"{name} is unsupported LoRA weight")


def test_vllm_peft_rules(adapter):
    conf = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert VLLM_REQUIRED <= set(conf)
    assert not conf.get("modules_to_save") and conf.get("use_dora") is False and conf["bias"] == "none"
    modules = {_vllm_module(k) for k in load_file(adapter / "adapter_model.safetensors")}
    assert {m.rsplit(".", 1)[-1] for m in modules} == LLAMA_LINEAR
    assert set(conf["target_modules"]) == LLAMA_LINEAR


def test_llama_cpp_convert_rules(adapter, tiny_llm):
    conf = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert isinstance(conf["lora_alpha"], int | float) and not conf["use_rslora"]
    base_config = AutoConfig.from_pretrained(conf["base_model_name_or_path"])  # what the converter reads
    assert base_config.architectures == ["LlamaForCausalLM"]
    with safe_open(tiny_llm / "model.safetensors", framework="pt") as f:
        base = {k: f.get_slice(k).get_shape() for k in f.keys()}
    tensors = load_file(adapter / "adapter_model.safetensors")
    pairs: dict[str, dict[str, list[int]]] = {}
    for name, tensor in tensors.items():
        assert ".lora_A.weight" in name or ".lora_B.weight" in name, name
        base_name = name.replace("base_model.model.", "")
        base_name = base_name.replace(".lora_A.weight", ".weight").replace(".lora_B.weight", ".weight")
        assert base_name in base, f"{name} -> {base_name} is not a tensor of the base model"
        pairs.setdefault(base_name, {})["A" if ".lora_A." in name else "B"] = list(tensor.shape)
    for base_name, ab in pairs.items():
        out_features, in_features = base[base_name]
        assert ab["A"] == [conf["r"], in_features] and ab["B"] == [out_features, conf["r"]], base_name
