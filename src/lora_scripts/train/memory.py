"""Out-of-memory handling: split a batch into smaller micro-batches, and probe the largest batch that fits."""

from __future__ import annotations

import gc
import logging

import torch

log = logging.getLogger(__name__)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def chunks(items: list, size: int) -> list[list]:
    """Consecutive pieces of at most `size` items."""
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def probe_batch_size(trainer, groups: list[dict]) -> int:
    """`batch_size: auto`: the largest batch whose forward + backward fits, tried on the biggest items (the
    biggest bucket's images, the longest chat row)."""
    index = trainer.index
    items, biggest = index.largest()
    cap = min(index.num_samples, 16 if torch.cuda.is_available() else 4)
    params = [p for g in groups for p in g["params"]]
    for size in [c for c in (16, 8, 4, 2, 1) if c <= cap]:
        batch = (items * size)[:size]
        try:
            trainer.loss_for(batch).backward()
        except Exception as exc:
            if not is_oom(exc):
                raise
            free_memory()
            continue
        finally:
            for p in params:
                p.grad = None
        log.info("batch_size: auto -> %d (largest that fits at %s)", size, biggest)
        return size
    return 1
