"""The LoRA tools' linear algebra: exact concatenation, lossless SVD at the true rank, energy selection."""

import pytest
import torch

from lora_scripts.inject.lora import LoraWeights
from lora_scripts.tools.lowrank import choose_rank, concat, delta, from_delta, rank_of, resize

SHAPES = [(32, 64), (32, 64, 1, 1), (32, 16, 3, 3)]


def _lora(shape, rank, seed, alpha=None, true_rank=None):
    """A rank-`rank` LoRA whose product has rank `true_rank` (down rows mixed from fewer directions)."""
    gen = torch.Generator().manual_seed(seed)
    inner = true_rank or rank
    base = torch.randn((inner, *shape[1:]), generator=gen)
    mix = torch.randn(rank, inner, generator=gen)
    down = (mix @ base.flatten(1)).reshape(rank, *shape[1:])
    up = torch.randn((shape[0], rank, *([1, 1] if len(shape) == 4 else [])), generator=gen)
    return LoraWeights(down=down, up=up, alpha=float(alpha or rank))


def _close(a, b, tol=1e-5):
    return float((a - b).norm() / b.norm()) < tol


@pytest.mark.parametrize("shape", SHAPES)
def test_delta_follows_kohya_scale_and_shape(shape):
    w = _lora(shape, 4, 0, alpha=2)
    want = (w.up.flatten(1) @ w.down.flatten(1)).reshape(shape) * 0.5
    assert delta(w).shape == shape and torch.allclose(delta(w), want)


@pytest.mark.parametrize("shape", SHAPES)
def test_concatenation_is_the_exact_weighted_sum(shape):
    a, b = _lora(shape, 4, 1, alpha=1), _lora(shape, 2, 2, alpha=8)
    joined = concat([(a, 0.7), (b, -0.4)])
    assert rank_of(joined) == 6 and joined.alpha == 6.0
    assert _close(delta(joined), 0.7 * delta(a) - 0.4 * delta(b), 1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_resize_of_a_low_rank_delta_loses_nothing_at_that_rank(shape):
    w = _lora(shape, 8, 3, alpha=3, true_rank=3)
    small, kept = resize(w, rank=3)
    assert rank_of(small) == 3 and small.alpha == 3.0 and small.down.shape[1:] == w.down.shape[1:]
    assert kept.rank_in == 8 and kept.rank_out == 3 and kept.energy > 1 - 1e-9
    assert _close(delta(small), delta(w))
    # below the true rank something is lost, and the report says how much
    smaller, kept2 = resize(w, rank=2)
    assert kept2.energy < 1 - 1e-4
    residual = (delta(w) - delta(smaller)).norm() ** 2 / delta(w).norm() ** 2
    assert abs(float(residual) - (1 - kept2.energy)) < 1e-4


def test_rank_is_capped_at_what_the_delta_has():
    w = _lora((32, 64), 8, 4, true_rank=3)
    assert rank_of(resize(w, rank=16)[0]) == 3


def test_energy_picks_the_smallest_rank_reaching_it():
    s = torch.tensor([4.0, 2.0, 1.0, 0.5])  # energies 16, 4, 1, .25 of 21.25: cumulative .753, .941, .988
    assert choose_rank(s, None, 0.75) == 1
    assert choose_rank(s, None, 0.9) == 2
    assert choose_rank(s, None, 0.95) == 3
    assert choose_rank(s, None, 1.0) == 4
    assert choose_rank(s, 2, None) == 2


@pytest.mark.parametrize("shape", SHAPES)
def test_from_delta_recovers_a_known_low_rank_change(shape):
    known = delta(_lora(shape, 2, 5))
    w, kept = from_delta(known, rank=4)
    assert rank_of(w) == 2 and kept.energy > 1 - 1e-6
    assert _close(delta(w), known, 1e-5)
