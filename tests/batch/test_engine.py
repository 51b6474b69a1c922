"""The job's pipeline: one LoRA mix fused into the weights once gives generate's images (hooks, one image at a
time from the prompt text) up to float noise; each prompt goes through the text encoder once."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from lora_scripts.batch.config import load_job
from lora_scripts.batch.engine import Engine
from lora_scripts.batch.items import template_mixes
from lora_scripts.batch.run import plan_job
from lora_scripts.config import ModelConfig
from lora_scripts.generate.images import generate_images
from lora_scripts.generate.library import LoraLibrary
from lora_scripts.generate.stack import LoraStack
from lora_scripts.models.registry import load_model


def generate_reference(job, specs, lora_dir):
    model = load_model(ModelConfig(base_model=job.base_model))
    stack = LoraStack(model.adapter_modules(), model.info.name, LoraLibrary(lora_dir))
    try:
        images = generate_images(model.pipeline(), specs, stack, progress=False)
    finally:
        stack.close()
    return [np.asarray(im, dtype=np.float32) / 255 for im in images]


def test_fused_batched_job_matches_generate(make_job, batch_loras):
    job = load_job(make_job(images_per_item=3, batch_size=4))
    plan = plan_job(job)
    engine = Engine(job, plan.library, template_mixes(job), "cpu", torch.float32)
    assert engine.fused == (("tech_phone", 0.8),) and engine.stack is None
    images = [image for batch in plan.batches for image in engine.render(batch)]
    assert [len(b) for b in plan.batches] == [4, 4, 1]
    assert engine.encoded == 3 + 1  # three item prompts (3 images each) and the negative prompt, once each

    specs = [w.spec for w in plan.works]
    reference = generate_reference(job, specs, batch_loras)
    for ours, theirs in zip(images, reference, strict=True):
        assert np.abs(np.round(ours * 255) / 255 - theirs).max() <= 2 / 255
    without = generate_reference(job, [replace(s, loras=()) for s in specs[:3]], batch_loras)
    assert min(np.abs(a - b).mean() for a, b in zip(images, without, strict=False)) > 0.02  # LoRA applied


def test_several_mixes_use_the_stack_per_batch(make_job, batch_loras):
    overrides = {"laptop": {"prompt": "<lora:metal:0.5> {brand} {model}"}}
    job = load_job(make_job(by="category", overrides=overrides, images_per_item=1, batch_size=8))
    plan = plan_job(job)
    engine = Engine(job, plan.library, template_mixes(job), "cpu", torch.float32)
    assert engine.fused is None and engine.stack is not None
    assert [[w.id for w in b] for b in plan.batches] == [["AP-IP15", "SM-S24"], ["LN-X1C"]]
    images = [image for batch in plan.batches for image in engine.render(batch)]
    engine.close()
    reference = generate_reference(job, [w.spec for w in plan.works], batch_loras)
    for ours, theirs in zip(images, reference, strict=True):
        assert np.abs(np.round(ours * 255) / 255 - theirs).max() <= 2 / 255


def test_sdxl_job_matches_generate(make_job, tmp_path_factory, batch_loras):
    from lora_scripts.models.tiny_sdxl import save_tiny_sdxl

    model = save_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))["single_file"]
    keys = {"prompt": "{brand} {model}, {colour}", "negative_prompt": "", "width": 64, "height": 64}
    job = load_job(make_job(base_model=str(model), images_per_item=1, **keys))
    plan = plan_job(job)
    engine = Engine(job, plan.library, template_mixes(job), "cpu", torch.float32)
    assert engine.sdxl
    images = [image for batch in plan.batches for image in engine.render(batch)]
    reference = generate_reference(job, [w.spec for w in plan.works], batch_loras)
    for ours, theirs in zip(images, reference, strict=True):
        assert np.abs(np.round(ours * 255) / 255 - theirs).max() <= 2 / 255


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("g++"), reason="torch.compile on a CPU builds C++ kernels with g++")
def test_compile_compiles_the_unet_once_and_keeps_the_images(make_job):
    """`compile: true` (for GPUs; a minute of compiling here): the UNet runs as one compiled graph for every
    batch (one batch size, dynamic=False: no recompile), and the images are the eager pipeline's."""
    job = load_job(make_job(images_per_item=4, batch_size=4, compile=True))
    plan = plan_job(job)
    assert [len(b) for b in plan.batches] == [4, 4, 4]
    torch._dynamo.reset()
    counters.clear()
    engine = Engine(job, plan.library, template_mixes(job), "cpu", torch.float32)
    compiled = [image for batch in plan.batches for image in engine.render(batch)]
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo traced the UNet
    frames = counters["frames"]["ok"]
    engine.render(plan.batches[0])
    assert counters["frames"]["ok"] == frames  # no recompiling for a further batch
    eager_job = job.model_copy(update={"compile": False})
    eager = Engine(eager_job, plan.library, template_mixes(eager_job), "cpu", torch.float32)
    expected = [image for batch in plan.batches for image in eager.render(batch)]
    for ours, theirs in zip(compiled, expected, strict=True):
        assert np.abs(ours - theirs).max() <= 1 / 255
