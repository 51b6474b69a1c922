import torch

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


def test_run_writes_lora_checkpoints_and_log(base_config):
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
    assert result.lora_path == out / "test_lora.safetensors" and result.lora_path.is_file()
    assert (out / "test_lora-step000002.safetensors").is_file()
    assert (out / "test_lora-step000004.safetensors").is_file()
    log = (out / "train.log").read_text()
    assert "step 1 " in log and "Saved" in log
    from lora_scripts.save.kohya import read_lora_file

    tensors, meta = read_lora_file(str(result.lora_path))
    assert any(k.startswith("lora_te_text_model_encoder_layers_") for k in tensors)
    assert meta["ss_steps"] == "5" and meta["ss_network_train_unet_only"] == "False"
    assert any(torch.count_nonzero(v) for k, v in tensors.items() if k.endswith("lora_up.weight"))


def test_v_prediction_target(base_config):
    cfg = build_config({**base_config, "prediction_type": "v_prediction", "max_train_steps": 2})
    model = StableDiffusion(load_components(cfg.model))
    latents, noise, t = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.tensor([10])
    assert torch.allclose(
        model.target(latents, noise, t), model.noise_scheduler.get_velocity(latents, noise, t)
    )


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
