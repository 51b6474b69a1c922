"""The tokenised chat training set: rows (one sample, or several packed), per-epoch batches, and the
tensors of a batch. Packed rows restart their position ids per sample and carry no attention mask, so
transformers' attention (sdpa, eager, flash) keeps each sample to itself (masking_utils finds the samples
from the position ids: a block-diagonal causal mask)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from .chat_tokens import IGNORE, ChatSample


@dataclass(frozen=True)
class ChatRow:
    samples: tuple[ChatSample, ...]
    NOUN = "conversations"  # held-out rows are one conversation each

    @property
    def tokens(self) -> int:
        return sum(len(s) for s in self.samples)


@dataclass
class ChatIndex:
    items: list[ChatRow]
    root: Path
    packed: bool = False
    ID_NAME = "training conversations"  # how data_id() is named in a state's fingerprint

    @property
    def num_samples(self) -> int:
        return sum(len(row.samples) for row in self.items)

    def batches(self, batch_size: int, seed: int, epoch: int) -> list[list[ChatRow]]:
        """Rows shuffled deterministically per epoch (seed, epoch), cut into batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rows = list(self.items)
        random.Random(seed * 1000003 + epoch).shuffle(rows)
        return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    def largest(self) -> tuple[list[ChatRow], str]:
        """The longest row, and its length in words (`batch_size: auto` probes with it)."""
        row = max(self.items, key=lambda r: r.tokens)
        return [row], f"{row.tokens} tokens"

    def facts(self) -> dict:
        return {"num_samples": self.num_samples}

    def data_id(self) -> str:
        """Every sample's tokens and labels: other data, template or max_seq_len changes it."""
        digest = hashlib.sha1()
        for row in self.items:
            for s in row.samples:
                digest.update(repr((s.input_ids, s.labels)).encode())
        return f"{self.num_samples} conversations, {digest.hexdigest()[:12]}"

    def summary(self) -> str:
        tokens = sum(row.tokens for row in self.items)
        trained = sum(sum(1 for t in s.labels if t != IGNORE) for row in self.items for s in row.samples)
        cut = [s for row in self.items for s in row.samples if s.cut]
        lines = [
            f"Chat dataset '{self.root}': {self.num_samples} conversations, {tokens} tokens, {trained} of "
            f"them trained on" + (f", packed into {len(self.items)} rows" if self.packed else ""),
        ]
        if cut:
            lines.append(
                f"  {len(cut)} conversations are longer than max_seq_len and were cut "
                f"({sum(s.cut for s in cut)} tokens), e.g. the {cut[0].where}"
            )
        return "\n".join(lines)


def collate(rows: list[ChatRow], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids, labels and position_ids (restarting per sample) of a batch, padded on the right; the
    padding is a sample of its own that nothing attends to and that has no loss."""
    width = max(row.tokens for row in rows)
    ids, labels, positions = [], [], []
    for row in rows:
        r_ids, r_labels, r_pos = [], [], []
        for s in row.samples:
            r_ids += s.input_ids
            r_labels += s.labels
            r_pos += range(len(s))
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_labels + [IGNORE] * pad)
        positions.append(r_pos + list(range(pad)))
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "position_ids": torch.tensor(positions),
    }
