"""Re-training a chat LoRA from an earlier adapter folder (init_lora on the LLM route): the earlier adapter
is kept, the new one is the next version and starts from the old weights, DoRA stays DoRA, and an adapter of
another model is one sentence."""

from __future__ import annotations

import json

import torch
from llm_files import write_yaml
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.models.tiny_llm import build_tiny_llm
from lora_scripts.train.run import run_training


def _weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_init_lora_continues_an_adapter_as_its_next_version(cli, llm_config, tmp_path):
    v1 = run_training(build_config({**llm_config, "save_precision": "float"})).lora_path
    before = _weights(v1)
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in before.items())
    # a learning rate that cannot move the weights: what v2 holds is what it started from
    again = {**llm_config, "init_lora": str(v1), "learning_rate": 1e-12, "max_train_steps": 2}
    done = cli("train", "-c", str(write_yaml(tmp_path / "v2.yaml", {**again, "save_precision": "float"})))
    assert done.returncode == 0, done.stderr[-3000:]
    v2 = tmp_path / "out" / "cs_tone_v2" / "cs_tone_v2"
    after = _weights(v2)
    assert after.keys() == before.keys()
    assert all(torch.allclose(after[k], before[k], atol=1e-6) for k in before)
    assert all(torch.equal(_weights(v1)[k], before[k]) for k in before)  # v1 untouched
    log = " ".join(done.stderr.split())
    assert "Continuing cs_tone as a new version" in log and "language-model modules, rank 4" in log
    report = json.loads(cli("lora", "inspect", str(v2), "--json").stdout)
    assert report["continued_from"] == "cs_tone" and report["r"] == 4


def test_a_dora_adapter_is_continued_as_dora(llm_config, tmp_path):
    v1 = run_training(build_config({**llm_config, "use_dora": True, "save_precision": "float"})).lora_path
    again = {**llm_config, "init_lora": str(v1), "output_name": "next", "save_precision": "float"}
    again["output_dir"] = str(tmp_path / "next")  # one folder per LoRA
    v2 = run_training(build_config(again)).lora_path
    conf = json.loads((v2 / "adapter_config.json").read_text(encoding="utf-8"))
    assert conf["use_dora"] is True
    key = "base_model.model.model.layers.1.mlp.up_proj.lora_magnitude_vector"
    assert _weights(v2)[key].shape == _weights(v1)[key].shape


def test_an_adapter_of_another_model_is_one_sentence(cli, llm_config, tmp_path):
    other, _ = build_tiny_llm(hidden=64)
    folder = tmp_path / "other-adapter"
    config = LoraConfig(r=4, target_modules=["q_proj"], task_type="CAUSAL_LM")
    get_peft_model(other, config).save_pretrained(folder)
    done = cli("train", "-c", str(write_yaml(tmp_path / "c.yaml", {**llm_config, "init_lora": str(folder)})))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    text = " ".join(done.stderr.split())
    assert "does not fit this base model: its layer model.layers.0.self_attn.q_proj is 64->64" in text
    not_one = write_yaml(tmp_path / "d.yaml", {**llm_config, "init_lora": str(tmp_path)})
    done = cli("train", "-c", str(not_one))
    assert done.returncode == 2 and "is not a PEFT adapter folder" in " ".join(done.stderr.split())
