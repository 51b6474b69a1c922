"""Tiny chat models (real Llama and Qwen2 architectures, random weights, a BPE tokenizer trained offline with
a ChatML template) saved as transformers folders, and a small chat dataset and config."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_files import write_messages_jsonl

from lora_scripts.models.tiny_llm import save_tiny_llm


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-llama", arch="llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    return save_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-qwen2", arch="qwen2")


@pytest.fixture()
def chat_jsonl(tmp_path) -> Path:
    return write_messages_jsonl(tmp_path / "chats.jsonl")


@pytest.fixture()
def llm_config(tiny_llm, chat_jsonl, tmp_path) -> dict:
    return {
        "base_model": str(tiny_llm),
        "dataset": str(chat_jsonl),
        "output_dir": str(tmp_path / "out"),
        "output_name": "cs_tone",
        "lora_rank": 4,
        "lora_alpha": 8,
        "batch_size": 2,
        "max_train_steps": 4,
        "learning_rate": 1e-2,
        "max_seq_len": 128,
        "device": "cpu",
    }
