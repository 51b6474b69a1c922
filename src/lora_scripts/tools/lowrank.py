"""The linear algebra of LoRA tools: a module's delta, exact concatenation, and SVD to a lower rank.

kohya convention: delta W = (up @ down) * alpha / rank; for a 3x3 conv LoRA down is [r, in, 3, 3] and up is
[out, r, 1, 1], so the product is taken on the flattened factors and reshaped to [out, in, 3, 3].
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..inject.lora import LoraWeights


@dataclass
class Kept:
    """What an SVD truncation kept: rank before/after and the fraction of the delta's energy (sum S^2)."""

    rank_in: int
    rank_out: int
    energy: float  # fraction kept
    total: float = 0.0  # the delta's squared Frobenius norm, to weigh modules in an overall figure


def rank_of(w: LoraWeights) -> int:
    return int(w.down.shape[0])


def weight_shape(w: LoraWeights) -> tuple[int, ...]:
    """Shape of the weight this LoRA changes: [out, in] or [out, in, kh, kw]."""
    return (int(w.up.shape[0]), *w.down.shape[1:])


def delta(w: LoraWeights, weight: float = 1.0) -> torch.Tensor:
    """The full weight change up @ down * alpha / rank (times `weight`), in the module's weight shape."""
    scale = w.alpha / rank_of(w) * weight
    full = w.up.flatten(1).float() @ w.down.flatten(1).float()
    return (full * scale).reshape(weight_shape(w))


def concat(items: list[tuple[LoraWeights, float]]) -> LoraWeights:
    """Exact sum of weighted LoRAs of one module as one LoRA of the summed rank (alpha = rank, scale 1)."""
    downs = [w.down.float() for w, _ in items]
    ups = [w.up.float() * (w.alpha / rank_of(w) * k) for w, k in items]
    down, up = torch.cat(downs, 0), torch.cat(ups, 1)
    return LoraWeights(down=down, up=up, alpha=float(down.shape[0]))


def choose_rank(s: torch.Tensor, rank: int | None, energy: float | None) -> int:
    """`rank` (capped by what exists), or the smallest rank whose kept energy reaches `energy`."""
    # directions below ~1000 float32 eps of the largest are round-off, not part of the delta
    nonzero = max(1, int((s > s.max() * torch.finfo(torch.float32).eps * 1e3).sum())) if s.numel() else 1
    if rank is not None:
        return max(1, min(rank, nonzero))
    total = (s**2).sum()
    if total <= 0:
        return 1
    cumulative = torch.cumsum(s**2, 0) / total
    reached = int((cumulative < (energy or 1.0) - 1e-7).sum()) + 1
    return max(1, min(reached, nonzero))


@contextmanager
def one_thread() -> Iterator[None]:
    """Tall-skinny QR and rank x rank SVDs are tiny: threads only add overhead (a lot, on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def svd_factors(up2d: torch.Tensor, down2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of up2d @ down2d without forming it: QR of both factors, SVD of the small core (exact)."""
    with one_thread():
        qu, ru = torch.linalg.qr(up2d.double())
        qd, rd = torch.linalg.qr(down2d.double().T)
        u, s, vh = torch.linalg.svd(ru @ rd.T, full_matrices=False)
    return qu @ u, s, vh @ qd.T


def truncate(
    u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, shape: tuple[int, ...], k: int
) -> LoraWeights:
    """Rank-k LoRA from an SVD: up = U_k sqrt(S_k), down = sqrt(S_k) V_k^T, alpha = k (scale 1)."""
    root = s[:k].sqrt()
    up = (u[:, :k] * root).float()
    down = (root[:, None] * vh[:k]).float()
    if len(shape) == 4:
        up, down = up.reshape(shape[0], k, 1, 1), down.reshape(k, *shape[1:])
    return LoraWeights(down=down.contiguous(), up=up.contiguous(), alpha=float(k))


def _kept(s: torch.Tensor, k: int, rank_in: int) -> Kept:
    total = float((s.double() ** 2).sum())
    return Kept(rank_in, k, float((s[:k].double() ** 2).sum()) / total if total > 0 else 1.0, total)


def resize(w: LoraWeights, rank: int | None = None, energy: float | None = None) -> tuple[LoraWeights, Kept]:
    """The LoRA's delta re-factored at `rank`, or at the smallest rank keeping `energy` of it."""
    scale = w.alpha / rank_of(w)
    u, s, vh = svd_factors(w.up.flatten(1) * scale, w.down.flatten(1))
    k = choose_rank(s, rank, energy)
    return truncate(u, s, vh, weight_shape(w), k), _kept(s, k, rank_of(w))


def from_delta(
    full: torch.Tensor, rank: int | None = None, energy: float | None = None
) -> tuple[LoraWeights, Kept]:
    """A LoRA approximating a full weight change (extract): truncated SVD of the flattened delta."""
    u, s, vh = torch.linalg.svd(full.flatten(1).float(), full_matrices=False)
    k = choose_rank(s, rank, energy)
    return truncate(u, s, vh, tuple(full.shape), k), _kept(s, k, min(full.flatten(1).shape))
