"""A tiny chat model built in code: a real Llama or Qwen2 architecture (random weights, hidden 32, 2 layers)
with a byte-level BPE tokenizer trained offline and a ChatML chat template, saved as a transformers folder.

Tests and the LLM demo load it through the same code path as a downloaded model folder (models/llm.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from ..data.chat_tokens import CHATML
from ..files import replacing_folder

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "您好，欢迎光临！请问有什么可以帮您？",
    "Hello! How can I help you today? Thank you for your patience.",
    "旧手机回收报价：iPhone 13 128GB 成色良好，估价 2100 元。",
    "The trade-in price depends on the model, storage and condition.",
    "system user assistant 客服 手机 电脑 平板 价格 报价 成色 回收 以旧换新",
]
ARCHITECTURES = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def tiny_tokenizer(corpus: list[str] | None = None, vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any text encodes, Chinese included) with the ChatML specials and template."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator((corpus or []) + CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
        model_max_length=2048,
    )


def build_tiny_llm(
    arch: str = "llama",
    seed: int = 0,
    corpus: list[str] | None = None,
    hidden: int = 32,
    layers: int = 2,
    vocab_size: int = 400,
):
    """(model, tokenizer): a randomly initialised `arch` ("llama" or "qwen2") causal LM and its tokenizer
    (bigger `hidden`/`layers`/`vocab_size` for the benchmark)."""
    tokenizer = tiny_tokenizer(corpus, vocab_size)
    config_cls, model_cls = ARCHITECTURES[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def save_tiny_llm(
    folder: Path, arch: str = "llama", seed: int = 0, corpus: list[str] | None = None, **size
) -> Path:
    """Write the tiny model as a transformers folder (config.json, model.safetensors, tokenizer files),
    complete or absent: built beside `folder`, then renamed into place."""
    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    model, tokenizer = build_tiny_llm(arch, seed, corpus, **size)
    with replacing_folder(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return folder
