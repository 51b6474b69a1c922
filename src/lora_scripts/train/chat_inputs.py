"""The LLM route before training: every check that can fail on user input, then the chat data read,
split, tokenised with the model's chat template and (with `packing`) packed. Nothing is written here."""

from __future__ import annotations

import logging

from ..config import Config
from ..data.chat import Conversation, read_chats
from ..data.chat_dataset import ChatIndex, ChatRow
from ..data.chat_tokens import IGNORE, check_tokenizer, pack, resolve_template, tokenize_chat
from ..doctor.chat import chat_findings
from ..errors import ConfigError
from ..models.detect import locate
from ..models.llm import four_bit_settings, load_tokenizer
from ..models.registry import model_family
from .init_lora import check_init_lora
from .state import find_state
from .validation import hold_out

log = logging.getLogger(__name__)


def check_chat_inputs(cfg: Config, final_path) -> tuple[ChatIndex, list[ChatRow]]:
    """(rows to train on, held-out rows). `final_path(output)` checks the output folder (train/run.py)."""
    source = locate(cfg.model.base_model)
    family = model_family(source, cfg.model)
    log.info("Base model %s: %s; training a chat LoRA", source.location, family.info.display_name)
    _check_options(cfg)
    llm = cfg.llm
    conversations = read_chats(llm.dataset, llm.dataset_format, llm.system_prompt)
    train, held = hold_out(conversations, llm.eval_split, "eval_split", "conversations")
    if llm.eval_dataset:
        held += read_chats(llm.eval_dataset, llm.dataset_format, llm.system_prompt)
    if cfg.train.resume and cfg.train.resume != "auto":
        find_state(cfg.train.resume, cfg.output.output_dir)
    final_path(cfg.output)
    tokenizer = load_tokenizer(source.location)
    check_tokenizer(tokenizer, cfg.model.base_model)
    template = resolve_template(llm.chat_template, tokenizer, cfg.model.base_model)
    samples = _tokenize(train, tokenizer, template, cfg)
    cuts = {s.where: s.cut for s in samples if s.cut}
    for finding in chat_findings(train, cuts, llm.max_seq_len):
        log.warning("doctor: %s", finding.message)
    if llm.packing:
        rows = [ChatRow(r) for r in pack(samples, llm.max_seq_len)]
    else:
        rows = [ChatRow((s,)) for s in samples]
    held_rows = [ChatRow((s,)) for s in _tokenize(held, tokenizer, template, cfg)]
    return ChatIndex(rows, llm.dataset, packed=llm.packing), held_rows


def _tokenize(conversations: list[Conversation], tokenizer, template: str, cfg: Config):
    llm = cfg.llm
    samples = [tokenize_chat(c, tokenizer, template, llm.train_on, llm.max_seq_len) for c in conversations]
    kept = [s for s in samples if any(t != IGNORE for t in s.labels)]
    if len(kept) < len(samples):
        first = next(s for s in samples if s not in kept)
        log.warning(
            "%d conversations have no assistant token left within max_seq_len %d and are left out (e.g. the "
            "%s); raise max_seq_len to train on them",
            len(samples) - len(kept),
            llm.max_seq_len,
            first.where,
        )
    if samples and not kept:
        raise ConfigError(
            f"No conversation has an assistant token within max_seq_len {llm.max_seq_len}",
            "Raise max_seq_len",
        )
    return kept


def _check_options(cfg: Config) -> None:
    """Options that cannot work here are one sentence, and those with a catch are said, before loading."""
    import torch

    if cfg.model.load_in_4bit:
        four_bit_settings()  # bitsandbytes missing: one sentence now, not after the data is read
        if not torch.cuda.is_available():
            log.warning(
                "load_in_4bit on a CPU: the base model takes about a quarter of the memory, but each step "
                "is slower than in full precision (QLoRA is meant for NVIDIA GPUs)"
            )
    if cfg.network.use_dora:
        log.warning(
            "use_dora: the adapter loads in peft, transformers and TGI, but vLLM refuses DoRA adapters; "
            "train without use_dora for a vLLM server"
        )
    if cfg.network.init_lora:
        check_init_lora(cfg.network, "peft")
