"""The LLM benchmark's two sides train the same LoRA on the same rows (so its ratios compare like with
like), checked in real worker processes on the tiny size: equal trainable parameters, and an equal first
loss (LoRA B starts at zero, so step 1 is the base model on the same first batch)."""

from __future__ import annotations

import math

import pytest

from bench.common import run_child
from bench.llm_sides import llm_files


@pytest.mark.slow
@pytest.mark.parametrize("packing", [False, True])
def test_trainer_and_bare_sides_do_the_same_work(packing):
    from transformers import AutoTokenizer

    model, data = llm_files(tiny=True)  # in bench/.cache, as the benchmark makes them
    spec = {
        "route": "llm",
        "model": str(model),
        "data": str(data),
        "max_seq_len": 512,
        "rank": 8,
        "batch_size": 4,
        "lr": 1e-4,
        "seed": 0,
        "device": "cpu",
        "pad_id": AutoTokenizer.from_pretrained(model).pad_token_id,
        "warmup": 1,
        "steps": 2,
        "packing": packing,
    }
    trainer, bare = run_child({**spec, "side": "trainer"}), run_child({**spec, "side": "bare"})
    assert trainer["trainable_params"] == bare["trainable_params"] > 0
    assert math.isclose(trainer["losses"][0], bare["losses"][0], rel_tol=1e-5)
    assert trainer["tokens_at_step"] == bare["tokens_at_step"] and trainer["tokens_at_step"][0] > 0
