"""The LLM route in the config: taken for a causal-LM folder or `model_type: llm`; the other route's keys
and typos get one sentence through the real CLI."""

from __future__ import annotations

import pytest
from llm_files import write_yaml

from lora_scripts.config import build_config
from lora_scripts.errors import ConfigError


@pytest.mark.parametrize("fixture", ["tiny_llm", "tiny_qwen2"])
def test_a_causal_lm_folder_takes_the_llm_route(fixture, request, chat_jsonl):
    folder = request.getfixturevalue(fixture)
    cfg = build_config({"base_model": str(folder), "dataset": str(chat_jsonl)})
    assert cfg.route == "llm" and cfg.data is None
    assert cfg.llm.dataset == chat_jsonl and cfg.llm.train_on == "assistant"
    assert cfg.data_section is cfg.llm


def test_model_type_llm_forces_the_route_for_a_hub_id():
    cfg = build_config(
        {"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "model_type": "llm", "dataset": "a.jsonl"}
    )
    assert cfg.route == "llm"
    with pytest.raises(ConfigError, match="'dataset' is missing"):
        build_config({"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "model_type": "llm"})


def test_shared_keys_keep_their_meaning_and_eval_steps_is_validation_steps(llm_config):
    cfg = build_config({**llm_config, "eval_steps": 3, "gradient_accumulation_steps": 2})
    assert cfg.train.validation_steps == 3 and cfg.train.gradient_accumulation_steps == 2
    assert cfg.network.lora_rank == 4 and cfg.network.alpha == 8.0 and cfg.train.max_train_steps == 4


def test_an_image_key_on_the_llm_route_is_one_sentence(cli, llm_config, tmp_path):
    path = write_yaml(tmp_path / "cfg.yaml", {**llm_config, "train_data_dir": str(tmp_path)})
    done = cli("train", "-c", str(path), "--dry-run")
    assert done.returncode == 2
    out = " ".join(done.stderr.split())
    assert "Key 'train_data_dir' in" in out and "is an image-route key, but this config trains an LLM" in out
    assert "transformers causal language model (LlamaForCausalLM)" in out and "`dataset:`" in out
    assert "Traceback" not in done.stdout + done.stderr


def test_an_llm_key_on_the_image_route_is_one_sentence(cli, base_config, tmp_path):
    path = write_yaml(tmp_path / "cfg.yaml", {**base_config, "packing": True})
    done = cli("train", "-c", str(path), "--dry-run")
    assert done.returncode == 2
    out = " ".join(done.stderr.split())
    assert "Key 'packing' in" in out and "is an LLM key, but this config trains an image LoRA" in out
    assert "is a checkpoint file" in out and "model_type: llm" in out


def test_a_misspelt_llm_key_gets_did_you_mean(cli, llm_config, tmp_path):
    config = {**llm_config, "max_seq_length": 256}
    del config["max_seq_len"]
    done = cli("train", "-c", str(write_yaml(tmp_path / "cfg.yaml", config)), "--dry-run")
    assert done.returncode == 2
    assert "Unknown key 'max_seq_length'" in done.stderr and "Did you mean 'max_seq_len'?" in done.stderr


def test_bad_llm_values_name_what_is_accepted(llm_config):
    with pytest.raises(ConfigError, match="'train_on'.*one of assistant or all"):
        build_config({**llm_config, "train_on": "everything"})
    with pytest.raises(ConfigError, match="'dataset_format'.*one of"):
        build_config({**llm_config, "dataset_format": "chatml"})


def test_the_commented_example_config_is_an_llm_config():
    from pathlib import Path

    from lora_scripts.config import load_config

    cfg = load_config(Path(__file__).parents[2] / "configs" / "cs_tone.yaml")
    assert cfg.route == "llm" and cfg.llm.packing and cfg.llm.train_on == "assistant"
    assert cfg.train.validation_steps == 50 and cfg.network.lora_rank == 16


@pytest.mark.parametrize("key,value", [("network_type", "loha"), ("dora_wd", True)])
def test_network_type_is_an_image_route_key(cli, llm_config, tmp_path, key, value):
    """LoHa/LoKr and LyCORIS's dora_wd are kohya files' settings; the LLM route writes PEFT LoRA adapters
    (DoRA there is use_dora), so the keys are refused instead of silently ignored."""
    path = write_yaml(tmp_path / "cfg.yaml", {**llm_config, key: value})
    done = cli("train", "-c", str(path), "--dry-run")
    out = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"Key '{key}' in" in out and "is an image-route key" in out
