"""The training loop: family-agnostic, on accelerate. It calls the model's tokenize/encode/predict/target."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..config import Config
from ..data import DatasetIndex, ImageItem, epoch_batches, load_pixels, make_caption
from ..inject.lora import inject_text_encoder, inject_unet, lora_parameters, read_weights
from ..models.sd import StableDiffusion
from ..save.metadata import RunFacts
from ..save.writer import save_lora
from .latents import LatentCache
from .optim import make_lr_scheduler, make_optimizer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    losses: list[float]
    seconds: float


class Trainer:
    def __init__(self, cfg: Config, model: StableDiffusion, index: DatasetIndex, accelerator: Accelerator):
        self.cfg, self.model, self.index, self.acc = cfg, model, index, accelerator
        self.out_dir = cfg.output.output_dir
        self.facts = RunFacts(
            family=model.family,
            prediction_type=model.prediction_type,
            num_images=index.num_images,
            num_samples=index.num_samples,
            tag_frequency=_tag_frequency(index),
            buckets={f"{w}x{h}": n for (w, h), n in index.buckets.items()},
        )
        self.rng = random.Random(cfg.train.seed)
        self._prepare_model()
        self.cache = self._prepare_cache()

    # --- setup: precision, LoRA injection, optimiser ---------------------------------------------
    def _prepare_model(self) -> None:
        cfg, m, acc = self.cfg, self.model, self.acc
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(acc.mixed_precision, torch.float32)
        for module in (m.unet, m.text_encoder, m.vae):  # frozen base in the compute dtype saves memory
            module.to(acc.device)
            if dtype != torch.float32:
                module.to(dtype=dtype)
        m.vae.requires_grad_(False)
        inject_unet(m.unet, cfg.network)  # LoRA weights stay fp32 (no "unscale FP16 gradients" error)
        groups = [{"params": lora_parameters(m.unet), "lr": cfg.train.learning_rate}]
        if cfg.network.train_text_encoder:
            inject_text_encoder(m.text_encoder, cfg.network)
            groups.append({"params": lora_parameters(m.text_encoder), "lr": cfg.train.te_lr})
        else:
            m.text_encoder.requires_grad_(False)
        if cfg.train.gradient_checkpointing:
            m.unet.enable_gradient_checkpointing()
            if cfg.network.train_text_encoder:
                m.text_encoder.gradient_checkpointing_enable()
        self.total_steps = self._total_steps()
        optimizer = make_optimizer(groups, cfg.train)
        scheduler = make_lr_scheduler(optimizer, cfg.train, self.total_steps)
        m.unet, self.optimizer, self.lr_scheduler = acc.prepare(m.unet, optimizer, scheduler)
        if cfg.network.train_text_encoder:
            m.text_encoder = acc.prepare(m.text_encoder)
        self.trainable = [p for g in groups for p in g["params"]]

    def _total_steps(self) -> int:
        tr = self.cfg.train
        batches = len(epoch_batches(self.index, tr.batch_size, tr.seed, 0))
        self.steps_per_epoch = max(1, math.ceil(batches / tr.gradient_accumulation_steps))
        return tr.max_train_steps or self.steps_per_epoch * tr.epochs

    def _prepare_cache(self) -> LatentCache | None:
        mode = self.cfg.train.cache_latents
        if mode == "no":
            return None
        if self.cfg.data.flip_aug:
            log.warning("cache_latents is on, so flip_aug has no effect (cached latents are not flipped)")
        folder = self.out_dir / "latent_cache" if mode == "disk" else None
        cache = LatentCache(self.model.encode_image, folder)
        cache.fill(self.index)
        return cache

    # --- one optimisation micro-step -----------------------------------------------------------
    def loss_for(self, items: list[ImageItem], generator: torch.Generator | None = None) -> torch.Tensor:
        m, dev, data = self.model, self.acc.device, self.cfg.data
        if self.cache is not None:
            latents = self.cache.get(items).to(dev)
        else:
            flips = [data.flip_aug and self.rng.random() < 0.5 for _ in items]
            pixels = torch.stack([load_pixels(i, f) for i, f in zip(items, flips, strict=True)])
            latents = m.encode_image(pixels.to(dev)).float()
        noise = torch.randn(latents.shape, generator=generator, device="cpu").to(dev)
        if self.cfg.train.noise_offset:
            offset = torch.randn(latents.shape[:2] + (1, 1), generator=generator, device="cpu").to(dev)
            noise = noise + self.cfg.train.noise_offset * offset
        steps = m.noise_scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (latents.shape[0],), generator=generator, device="cpu").to(dev)
        noisy = m.noise_scheduler.add_noise(latents, noise, t)
        ids = m.tokenize([make_caption(i.caption, data, self.rng) for i in items])
        with torch.set_grad_enabled(self.cfg.network.train_text_encoder and torch.is_grad_enabled()):
            cond = m.encode_prompt(ids)
        with self.acc.autocast():
            pred = m.predict(noisy.to(cond.dtype), t, cond)
        return F.mse_loss(pred.float(), m.target(latents, noise, t).float())

    # --- the loop -------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg, acc, tr = self.cfg, self.acc, self.cfg.train
        torch.manual_seed(tr.seed)
        self.model.unet.train()
        step, losses, started = 0, [], time.time()
        bar = tqdm(total=self.total_steps, desc="Training", unit="step", disable=not acc.is_main_process)
        epoch = 0
        while step < self.total_steps:
            for batch in epoch_batches(self.index, tr.batch_size, tr.seed, epoch):
                with acc.accumulate(self.model.unet):
                    loss = self.loss_for(batch)
                    acc.backward(loss)
                    if acc.sync_gradients and tr.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.trainable, tr.max_grad_norm)
                    self.optimizer.step()
                    self.lr_scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                if not acc.sync_gradients:
                    continue
                step += 1
                losses.append(loss.item())
                self._after_step(step, epoch, losses, bar)
                if step >= self.total_steps:
                    break
            epoch += 1
            self.facts.epoch = epoch
            if cfg.output.save_every_n_epochs and epoch % cfg.output.save_every_n_epochs == 0:
                self.save(f"{cfg.output.name()}-epoch{epoch:04d}", step)
        bar.close()
        path = self.save(cfg.output.name(), step)
        acc.end_training()
        return TrainResult(lora_path=path, steps=step, losses=losses, seconds=time.time() - started)

    def _after_step(self, step: int, epoch: int, losses: list[float], bar) -> None:
        lr = self.lr_scheduler.get_last_lr()[0]
        avg = sum(losses[-20:]) / len(losses[-20:])
        bar.update(1)
        bar.set_postfix(loss=f"{avg:.4f}", lr=f"{lr:.2e}", epoch=epoch + 1)
        self.acc.log({"loss": losses[-1], "lr": lr}, step=step)
        if step % 10 == 0 or step == 1:
            log.info("step %d epoch %d loss %.5f lr %.3e", step, epoch + 1, losses[-1], lr)
        save_steps = self.cfg.output.save_steps
        if save_steps and step % save_steps == 0 and step < self.total_steps:
            self.save(f"{self.cfg.output.name()}-step{step:06d}", step)

    def save(self, stem: str, step: int) -> Path:
        self.facts.steps = step
        parts = {"unet": read_weights(self.acc.unwrap_model(self.model.unet))}
        if self.cfg.network.train_text_encoder:
            parts["te"] = read_weights(self.acc.unwrap_model(self.model.text_encoder))
        path = save_lora(parts, self.out_dir / f"{stem}.safetensors", self.cfg, self.facts)
        log.info("Saved %s", path)
        return path


def _tag_frequency(index: DatasetIndex) -> dict[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for item in index.items:
        for tag in (t.strip() for t in item.caption.split(",")):
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return {index.root.name: counts}
