"""Out-of-memory fallback and batch_size: auto, with the OOM injected from a wrapped UNet forward."""

import logging
import zlib

import pytest
import torch

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
from lora_scripts.errors import TrainingError
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion
from lora_scripts.train.loop import Trainer
from lora_scripts.train.run import make_accelerator


def _oom_when(unet, too_big):
    real_forward = unet.forward

    def forward(sample, *args, **kwargs):
        if too_big(sample.shape[0]):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real_forward(sample, *args, **kwargs)

    unet.forward = forward


def _trainer(base_config, **extra):
    cfg = build_config({**base_config, **extra})
    model = StableDiffusion(load_components(cfg.model))
    return cfg, model, scan_dataset(cfg.data)


def test_oom_halves_micro_batch_and_keeps_going(base_config, caplog):
    cfg, model, index = _trainer(base_config, batch_size=4, max_train_steps=4)
    trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    calls = []
    real_forward = model.unet.forward

    def forward(sample, *args, **kwargs):
        if sample.shape[0] > 1 and len(calls) >= 2:  # fits at first, then memory runs out mid-run
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        calls.append(sample.shape[0])
        return real_forward(sample, *args, **kwargs)

    model.unet.forward = forward
    with caplog.at_level(logging.WARNING, logger="lora_scripts"):
        result = trainer.train()
    assert result.steps == 4  # same steps (same gradient: test_oom_split_steps_with_the_gradient_...)
    assert trainer.micro_batch == 1 and calls[2:] and all(size == 1 for size in calls[2:])
    halvings = sum("Out of memory at step" in r.message for r in caplog.records)
    assert 1 <= halvings <= 2  # logged once per halving


def _lora_params(model) -> list[torch.nn.Parameter]:
    return [p for n, p in model.unet.named_parameters() if "lora_" in n]


def _fixed_noise_per_image(trainer, oom_above: int | None = None) -> list[int]:
    """Make the trainer's loss the mean of per-image losses whose noise, timestep and VAE sample depend only
    on the image and how often it was used, so one batch gives the same gradient whole or in pieces; with
    `oom_above`, a piece of more images runs out of memory. Returns the piece sizes that ran."""
    real, uses, sizes = trainer.loss_for, {}, []

    def loss_for(items, generator=None):
        if oom_above is not None and len(items) > oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        sizes.append(len(items))
        losses = []
        for item in items:
            n = uses[item.path] = uses.get(item.path, 0) + 1
            seed = zlib.crc32(item.path.name.encode()) + 1000 * n
            torch.manual_seed(seed)  # the VAE's latent sample
            losses.append(real([item], generator=torch.Generator().manual_seed(seed)))
        return torch.stack(losses).mean()

    trainer.loss_for = loss_for
    return sizes


def _gradients_per_step(trainer, params) -> list[list[torch.Tensor]]:
    """The LoRA gradients the optimiser steps with (no clipping in these runs), one list per step."""
    seen, real_step = [], trainer.optimizer.step

    def step(*args, **kwargs):
        seen.append([p.grad.detach().clone() for p in params])
        return real_step(*args, **kwargs)

    trainer.optimizer.step = step
    return seen


def test_oom_split_steps_with_the_gradient_of_the_whole_batch(base_config, caplog):
    """Same effective batch after an out-of-memory halving: the LoRA gradient the optimiser steps with, and
    the LoRA weights after that step, equal those of the same run without running out of memory. Two steps:
    one epoch of the 6 images is a batch of 2 and a batch of 4, and the batch of 4 does not fit."""
    runs = []
    for oom_above in (None, 2):
        cfg, model, index = _trainer(base_config, batch_size=4, max_train_steps=2, max_grad_norm=0)
        torch.manual_seed(0)  # the same LoRA init in both runs
        trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
        params = _lora_params(model)
        sizes = _fixed_noise_per_image(trainer, oom_above)
        grads = _gradients_per_step(trainer, params)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lora_scripts"):
            assert trainer.train().steps == 2
        halvings = sum("Out of memory at step" in r.message for r in caplog.records)
        runs.append((sizes, grads, [p.detach().clone() for p in params], halvings, trainer.micro_batch))
    (sizes, grads, weights, halvings, micro), (sizes2, grads2, weights2, halvings2, micro2) = runs
    assert sorted(sizes) == [2, 4] and halvings == 0 and micro is None  # the reference ran whole batches
    assert sorted(sizes2) == [2, 2, 2] and halvings2 == 1 and micro2 == 2  # the batch of 4 ran as 2 + 2
    assert len(grads) == len(grads2) == 2
    for step, (g, g2) in enumerate(zip(grads, grads2, strict=True), start=1):
        whole, split = torch.cat([x.flatten() for x in g]), torch.cat([x.flatten() for x in g2])
        assert whole.norm() > 0
        rel = float((whole - split).norm() / whole.norm())
        assert rel < 1e-6, f"step {step}: the LoRA gradient differs by {rel:.1e} (relative) after the split"
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(weights, weights2, strict=True))


def test_oom_at_one_image_is_a_sentence(base_config):
    cfg, model, index = _trainer(base_config, batch_size=2, max_train_steps=2)
    trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    _oom_when(model.unet, lambda n: True)
    with pytest.raises(TrainingError, match="one image at a time"):
        trainer.train()


def test_batch_size_auto_picks_largest_that_fits(base_config, monkeypatch):
    cfg, model, index = _trainer(base_config, batch_size="auto", max_train_steps=1)
    _oom_when(model.unet, lambda n: n > 2)
    trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    assert all(p.grad is None for p in _lora_params(model))  # probing left no gradients behind
    sizes = []
    probed_forward = model.unet.forward

    def forward(sample, *args, **kwargs):
        sizes.append(sample.shape[0])
        return probed_forward(sample, *args, **kwargs)

    model.unet.forward = forward
    assert trainer.train().steps == 1
    assert sizes == [2]  # trains with 2 images a step: the largest batch that fitted


def test_text_encoder_outputs_cached_only_when_captions_are_fixed(base_config, caplog):
    cfg, model, index = _trainer(base_config, max_train_steps=1)
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    assert trainer.model.text_cache is not None
    caption = index.items[0].caption
    with torch.no_grad():
        direct = model.encode_prompt(model.tokenize([caption]))[0]
    assert torch.equal(trainer.model.text_cache.get([caption])[0], direct)

    cfg2, model2, index2 = _trainer(base_config, max_train_steps=1, shuffle_caption=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        trainer2 = Trainer(cfg2, model2, index2, make_accelerator(cfg2.train, cfg2.output.output_dir))
    assert trainer2.model.text_cache is None
    assert any("not cached: shuffle_caption" in r.message for r in caplog.records)
