"""Captions longer than CLIP's 75 tokens (kohya's max_token_length 150/225): the tokens are cut into chunks of
75, each encoded as its own `<BOS> ... <EOS>` sequence, and the hidden states joined again as one long
sequence (<BOS>, every chunk's middle, the last <EOS>). WebUI reads long prompts in chunks of 75 the same way.

Hand-written after kohya's train_util: neither diffusers nor transformers chunk prompts for training.
"""

from __future__ import annotations

import torch


def chunked_ids(tokenizer, captions: list[str], max_tokens: int) -> torch.Tensor:
    """[batch, max_tokens / 75, 77]: each chunk <BOS> + 75 tokens + <EOS> (or padding)."""
    width = tokenizer.model_max_length  # 77
    ids = tokenizer(
        captions, padding="max_length", max_length=max_tokens + 2, truncation=True, return_tensors="pt"
    ).input_ids
    rows = []
    for row in ids:
        chunks = []
        for start in range(1, max_tokens + 1, width - 2):
            chunk = torch.cat([row[:1], row[start : start + width - 2], row[-1:]])
            if tokenizer.pad_token_id != tokenizer.eos_token_id:  # SD 2.x: its pad token is not <EOS>
                if chunk[-2] not in (tokenizer.eos_token_id, tokenizer.pad_token_id):
                    chunk[-1] = tokenizer.eos_token_id  # a chunk cut mid-caption still ends with <EOS>
                if chunk[1] == tokenizer.pad_token_id:
                    chunk[1] = tokenizer.eos_token_id  # an empty chunk reads <BOS> <EOS> <PAD> ...
            chunks.append(chunk)
        rows.append(torch.stack(chunks))
    return torch.stack(rows)


def joined_states(hidden: torch.Tensor, batch: int) -> torch.Tensor:
    """[batch * chunks, 77, dim] hidden states -> [batch, 1 + 75 * chunks + 1, dim]: the first <BOS>, the
    75 middle states of every chunk, the last chunk's final state."""
    per = hidden.reshape(batch, -1, hidden.shape[1], hidden.shape[2])  # [batch, chunks, 77, dim]
    middle = per[:, :, 1:-1].reshape(batch, -1, hidden.shape[2])
    return torch.cat([per[:, 0, :1], middle, per[:, -1, -1:]], dim=1)
