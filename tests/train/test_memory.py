"""Out-of-memory fallback and batch_size: auto, with the OOM injected from a wrapped UNet forward."""

import logging

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
    assert result.steps == 4 and cfg.train.batch_size == 4  # same steps, same effective batch
    assert trainer.micro_batch == 1 and calls[2:] and all(size == 1 for size in calls[2:])
    halvings = sum("Out of memory at step" in r.message for r in caplog.records)
    assert 1 <= halvings <= 2  # logged once per halving


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
    assert cfg.train.batch_size == 2
    assert all(p.grad is None for p in trainer.trainable)  # probing left no gradients behind


def test_text_encoder_outputs_cached_only_when_captions_are_fixed(base_config, caplog):
    cfg, model, index = _trainer(base_config, max_train_steps=1)
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    assert trainer.text_cache is not None
    caption = index.items[0].caption
    with torch.no_grad():
        direct = model.encode_prompt(model.tokenize([caption]))[0]
    assert torch.equal(trainer.text_cache.get([caption])[0], direct)

    cfg2, model2, index2 = _trainer(base_config, max_train_steps=1, shuffle_caption=True)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lora_scripts"):
        trainer2 = Trainer(cfg2, model2, index2, make_accelerator(cfg2.train, cfg2.output.output_dir))
    assert trainer2.text_cache is None
    assert any("not cached: shuffle_caption" in r.message for r in caplog.records)
