import math

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.data import epoch_batches, scan_dataset
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion
from lora_scripts.train.loop import Trainer
from lora_scripts.train.run import make_accelerator, run_training


def _fixed_batch_loss(trainer, batch) -> float:
    with torch.no_grad():
        return trainer.loss_for(batch, generator=torch.Generator().manual_seed(123)).item()


def test_loss_on_a_fixed_batch_goes_down(base_config):
    cfg = build_config({**base_config, "learning_rate": 5e-3, "max_train_steps": 30, "lora_rank": 8})
    index = scan_dataset(cfg.data)
    model = StableDiffusion(load_components(cfg.model))
    trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    batch = epoch_batches(index, 2, 0, 0)[0]
    before = _fixed_batch_loss(trainer, batch)
    result = trainer.train()
    after = _fixed_batch_loss(trainer, batch)
    assert result.steps == 30
    assert after < before * 0.97, (before, after)


class _Calls:
    """Counts what goes through a library function (calls, or images with `size`), then calls it."""

    def __init__(self, monkeypatch, owner, name: str, size=lambda *args, **kwargs: 1):
        real, self.n = getattr(owner, name), 0

        def counted(*args, **kwargs):
            self.n += size(*args, **kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_run_with_many_features_does_what_each_one_says(base_config, monkeypatch):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    vae_images = _Calls(monkeypatch, AutoencoderKL, "encode", lambda self, x, *a, **k: x.shape[0])
    unet_calls = _Calls(monkeypatch, UNet2DConditionModel, "forward")
    checkpointed = _Calls(monkeypatch, torch.utils.checkpoint, "checkpoint")
    cfg = build_config(
        {
            **base_config,
            "save_steps": 2,
            "max_train_steps": 5,
            "cache_latents": "memory",
            "train_text_encoder": True,
            "gradient_accumulation_steps": 2,
            "gradient_checkpointing": True,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": 1,
        }
    )
    result = run_training(cfg)
    out = cfg.output.output_dir
    assert result.steps == 5 and len(result.losses) == 5 and all(map(math.isfinite, result.losses))
    # 6 images, batch 2: 3 micro-batches an epoch in windows of 2 + 1 (an epoch ends its window), so the
    # 5 optimiser steps take 2 + 1, 2 + 1, 2 micro-batches
    assert unet_calls.n == 8
    assert vae_images.n == 6  # cache_latents: each of the 6 images encoded once, not once per step
    assert checkpointed.n > 0  # gradient_checkpointing: UNet blocks run under torch.utils.checkpoint

    assert result.lora_path == out / "test_lora.safetensors"
    final = load_file(result.lora_path)
    saved = {n: load_file(out / f"test_lora-step{n:06d}.safetensors") for n in (2, 4)}
    assert not (out / "test_lora-step000005.safetensors").exists()  # the last step is the final file
    ups = [k for k in final if k.endswith(".lora_up.weight")]
    downs = [k for k in final if k.endswith(".lora_down.weight")]
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in ups)  # train_text_encoder
    assert all(final[k].shape[0] == 4 for k in downs) and len(ups) == len(downs)  # lora_rank
    # Every B left its zero init, UNet and text encoder, except where no gradient can reach: the mid block
    # sees 1x1 latents at 64 px, so its self-attention has one key and softmax makes q and k irrelevant.
    blind = {
        f"lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_{x}.lora_up.weight" for x in "qk"
    }
    # (blind B's move by float noise only: an exact 0 or a few 1e-6 by library version, where the rest move
    # by more than 1e-3; Adam's eps keeps a noise gradient's step far below the learning rate)
    assert not [k for k in set(ups) - blind if not final[k].any()]
    assert all(final[k].abs().max() < 1e-4 for k in blind), {k: final[k].abs().max().item() for k in blind}
    for before, after in ((saved[2], saved[4]), (saved[4], final)):  # training went on between saves
        assert before.keys() == final.keys()
        assert all(not torch.equal(before[k], after[k]) for k in set(ups) - blind)

    log = (out / "train.log").read_text()
    assert "step 1 " in log and "Saved" in log
    with safe_open(str(result.lora_path), "pt") as handle:
        meta = handle.metadata()
    want = {
        "ss_steps": "5",
        "ss_max_train_steps": "5",
        "ss_output_name": "test_lora",
        "ss_network_dim": "4",
        "ss_network_alpha": "4",
        "ss_network_train_unet_only": "False",
        "ss_unet_lr": "0.001",
        "ss_batch_size_per_device": "2",
        "ss_gradient_accumulation_steps": "2",
        "ss_gradient_checkpointing": "True",
        "ss_lr_scheduler": "cosine",
        "ss_lr_warmup_steps": "1",
        "ss_cache_latents": "True",
        "ss_num_train_images": "6",
    }
    assert {k: meta.get(k) for k in want} == want


def test_v_prediction_target_is_the_velocity(base_config):
    """v = sqrt(alpha_bar_t) * noise - sqrt(1 - alpha_bar_t) * x0 (Salimans & Ho), written out here rather
    than asked of the scheduler the code itself calls."""
    cfg = build_config({**base_config, "prediction_type": "v_prediction"})
    model = StableDiffusion(load_components(cfg.model))
    gen = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 4, 8, 8, generator=gen), torch.randn(4, 4, 8, 8, generator=gen)
    t = torch.tensor([0, 10, 500, 999])
    alpha_bar = model.noise_scheduler.alphas_cumprod.double()[t].view(-1, 1, 1, 1)
    want = alpha_bar.sqrt() * noise.double() - (1 - alpha_bar).sqrt() * x0.double()
    got = model.target(x0, noise, t)
    assert torch.allclose(got.double(), want, atol=1e-5), (got.double() - want).abs().max()
    assert not torch.allclose(want, noise.double(), atol=1e-2)  # v differs from epsilon at these t

    eps = StableDiffusion(load_components(build_config(base_config).model))
    assert torch.equal(eps.target(x0, noise, t), noise)


def test_bf16_mixed_precision_keeps_lora_in_fp32(base_config):
    cfg = build_config({**base_config, "mixed_precision": "bf16", "max_train_steps": 3})
    index = scan_dataset(cfg.data)
    model = StableDiffusion(load_components(cfg.model))
    trainer = Trainer(cfg, model, index, make_accelerator(cfg.train, cfg.output.output_dir))
    assert trainer.acc.mixed_precision == "bf16"
    unet = trainer.acc.unwrap_model(model.unet)
    lora = {n: p for n, p in unet.named_parameters() if "lora_" in n}
    base = [p for n, p in unet.named_parameters() if "lora_" not in n]
    assert all(p.dtype == torch.float32 and p.requires_grad for p in lora.values())
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in base)
    result = trainer.train()
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert any(torch.count_nonzero(p) for n, p in lora.items() if "lora_B" in n)


def test_disk_latent_cache_is_reused(base_config):
    cfg = build_config({**base_config, "cache_latents": "disk", "max_train_steps": 2})
    run_training(cfg)
    cache = cfg.output.output_dir / "latent_cache"
    files = sorted(cache.glob("*.safetensors"))
    assert len(files) == 6
    stamps = [f.stat().st_mtime_ns for f in files]
    run_training(
        build_config({**base_config, "cache_latents": "disk", "max_train_steps": 2, "overwrite": True})
    )
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*.safetensors"))] == stamps


def test_samples_tensorboard_and_report(base_config):
    cfg = build_config(
        {
            **base_config,
            "max_train_steps": 4,
            "sample_every_n_steps": 2,
            "sample_steps": 2,
            "sample_prompts": ["neon style, smartphone", "neon style, laptop"],
        }
    )
    result = run_training(cfg)
    out = cfg.output.output_dir
    assert sorted(result.samples) == [2, 4]
    assert len(list((out / "samples").glob("step*.png"))) == 4
    from PIL import Image

    png = Image.open(out / "samples" / "step000002-00.png")
    assert png.size == (64, 64) and "neon style, smartphone" in png.info["parameters"]
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "loss.png" in report and "samples/grid.png" in report and "learning_rate" in report
    assert (out / "loss.png").is_file() and (out / "samples" / "grid.png").is_file()
    grid = Image.open(out / "samples" / "grid.png")
    assert grid.width > 2 * 64 and grid.height > 2 * 64  # 2 rows x 2 columns plus labels
