"""Encode each caption once when the text encoder is frozen and captions never change between steps."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def text_cache_blocker(
    cache_on: bool, te_trained: bool, shuffle: bool, dropout: float, tag_dropout: float = 0.0
) -> str | None:
    """Why text-encoder outputs cannot be cached, or None when they can."""
    if not cache_on:
        return "cache_text_encoder_outputs is off"
    if te_trained:
        return "the text encoder is being trained"
    if shuffle:
        return "shuffle_caption changes the captions every step"
    if dropout > 0:
        return "caption_dropout_rate replaces captions with empty ones at random"
    if tag_dropout > 0:
        return "caption_tag_dropout_rate leaves tags out at random"
    return None


class TextCache:
    def __init__(self, encode, tokenize):
        self.encode, self.tokenize = encode, tokenize
        self.memory: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def fill(self, captions: list[str], batch: int = 16) -> None:
        todo = sorted(set(captions) - set(self.memory))
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            for caption, hidden in zip(chunk, self.encode(self.tokenize(chunk)), strict=True):
                self.memory[caption] = hidden.detach()

    def get(self, captions: list[str]) -> torch.Tensor:
        return torch.stack([self.memory[c] for c in captions])
