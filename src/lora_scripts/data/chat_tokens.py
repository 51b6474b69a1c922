"""Conversations -> token ids and labels, with the chat template applied exactly as at inference.

The whole conversation is rendered once by the template and tokenised as a server tokenises it
(`add_special_tokens=False`: the template writes any BOS itself). Which characters are the assistant's is
found by rendering the conversation up to each reply (with the generation prompt) and up to its end; the
tokens starting in those spans keep their labels, every other token gets -100 (with `train_on: assistant`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .chat import Conversation

IGNORE = -100
# ChatML as Qwen2 ships it (minus tools): <|im_start|>role\ncontent<|im_end|>\n per turn.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
NAMED = {"chatml": CHATML}


@dataclass(frozen=True)
class ChatSample:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORE where no loss is taken
    where: str
    cut: int = 0  # tokens cut off at max_seq_len

    def __len__(self) -> int:
        return len(self.input_ids)


def resolve_template(setting: str, tokenizer, model: str) -> str:
    """The Jinja template: the tokenizer's own (`auto`), a named one, or a file's text."""
    if setting == "auto":
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"The tokenizer of '{model}' has no chat template (it may be a base model, not a chat model)",
                "Set chat_template: chatml, or the path of the Jinja template your server applies",
            )
        return tokenizer.chat_template
    if setting.lower() in NAMED:
        return NAMED[setting.lower()]
    path = Path(setting).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"chat_template '{setting}' is neither a known name nor a file",
            f"Use auto, {', '.join(NAMED)} or the path of a Jinja file",
        )
    return path.read_text(encoding="utf-8-sig")


def tokenize_chat(
    conv: Conversation, tokenizer, template: str, train_on: str, max_seq_len: int
) -> ChatSample:
    messages = conv.as_list()

    def render(upto: int, prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            messages[:upto], chat_template=template, tokenize=False, add_generation_prompt=prompt
        )

    text = render(len(messages), False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start, end = render(i, True), render(i + 1, False)
        if not (text.startswith(end) and end.startswith(start)):
            raise ConfigError(
                "The chat template renders the start of a conversation differently when more turns follow "
                f"(seen on the {conv.where}), so the assistant's tokens cannot be told apart",
                "Set train_on: all, or chat_template: chatml or a template without that behaviour",
            )
        spans.append((len(start), len(end)))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    if train_on == "all":
        labels = list(ids)
    else:
        starts = [s for s, _ in encoded["offset_mapping"]]
        trained = [any(a <= s < b for a, b in spans) for s in starts]
        labels = [t if keep else IGNORE for t, keep in zip(ids, trained, strict=True)]
    labels[0] = IGNORE  # never predicted: also keeps a packed row from training across samples
    cut = max(0, len(ids) - max_seq_len)
    if cut:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return ChatSample(tuple(ids), tuple(labels), conv.where, cut)


def check_tokenizer(tokenizer, model: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(
            f"The tokenizer of '{model}' has no tokenizer.json (a 'fast' tokenizer is needed to find the "
            "assistant's tokens)",
            "Use the model folder as published with tokenizer.json, or convert it with transformers",
        )


def pack(samples: list[ChatSample], max_seq_len: int) -> list[tuple[ChatSample, ...]]:
    """Samples in order, greedily concatenated into rows of at most `max_seq_len` tokens (first fit)."""
    rows: list[list[ChatSample]] = []
    sizes: list[int] = []
    for sample in sorted(samples, key=len, reverse=True):
        for i, size in enumerate(sizes):
            if size + len(sample) <= max_seq_len:
                rows[i].append(sample)
                sizes[i] += len(sample)
                break
        else:
            rows.append([sample])
            sizes.append(len(sample))
    return [tuple(r) for r in rows]
