"""The training loop: family-agnostic, on accelerate. It calls the model's tokenize/encode/predict/target."""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..config import Config
from ..data import DatasetIndex, ImageItem, epoch_batches, load_pixels, make_caption
from ..errors import TrainingError
from ..inject.lora import inject_text_encoder, inject_unet, lora_layers, lora_parameters, read_weights
from ..models.sd import StableDiffusion
from ..save.metadata import RunFacts
from ..save.writer import save_lora
from .init_lora import apply_init_lora
from .latents import LatentCache
from .memory import chunks, free_memory, is_oom, probe_batch_size
from .optim import make_lr_scheduler, make_optimizer
from .samples import Sampler
from .state import ParamSet, Position, find_state, load_state, save_state
from .text_cache import TextCache, text_cache_blocker

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    losses: list[float]
    seconds: float
    samples: dict[int, list[Path]]


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
        self.cache: LatentCache | None = None
        self.text_cache: TextCache | None = None
        self.sampler = Sampler(cfg.sample, cfg.data.resolution, self.out_dir / "samples")
        self.last_good: Path | None = None  # newest training state saved, named when a NaN stops the run
        self.micro_batch: int | None = None  # None: whole batch at once; halved on out-of-memory
        self._prepare_model()
        self.cache = self._prepare_cache()
        self.text_cache = self._prepare_text_cache()

    # --- setup: precision, LoRA injection, optimiser ---------------------------------------------
    def _prepare_model(self) -> None:
        cfg, m, acc, net = self.cfg, self.model, self.acc, self.cfg.network
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(acc.mixed_precision, torch.float32)
        for module in (m.unet, m.text_encoder, m.vae):  # frozen base in the compute dtype saves memory
            module.to(acc.device)
            if dtype != torch.float32:
                module.to(dtype=dtype)
        m.vae.requires_grad_(False)
        m.text_encoder.requires_grad_(False)
        self._inject()  # LoRA weights stay fp32 (no "unscale FP16 gradients" error)
        groups = [{"params": lora_parameters(m.unet), "lr": cfg.train.learning_rate}]
        if net.train_text_encoder:
            groups.append({"params": lora_parameters(m.text_encoder), "lr": cfg.train.te_lr})
        else:
            for p in lora_parameters(m.text_encoder):  # e.g. init_lora's TE part: kept and saved, not trained
                p.requires_grad_(False)
        if cfg.train.gradient_checkpointing:
            m.unet.enable_gradient_checkpointing()
            if net.train_text_encoder:
                m.text_encoder.gradient_checkpointing_enable()
        if cfg.train.batch_size == "auto":
            cfg.train.batch_size = probe_batch_size(self, groups)
        self.total_steps = self._total_steps()
        optimizer = make_optimizer(groups, cfg.train)
        scheduler = make_lr_scheduler(optimizer, cfg.train, self.total_steps)
        m.unet, self.optimizer, self.lr_scheduler = acc.prepare(m.unet, optimizer, scheduler)
        if net.train_text_encoder:
            m.text_encoder = acc.prepare(m.text_encoder)
        self.trainable = [p for g in groups for p in g["params"]]

    def _inject(self) -> None:
        m, net = self.model, self.cfg.network
        has_te = False
        if net.init_lora:
            has_te = bool(apply_init_lora(net, {"unet": m.unet, "te": m.text_encoder}, m.family)["te"])
        else:
            inject_unet(m.unet, net)
        if net.train_text_encoder and not has_te:
            inject_text_encoder(m.text_encoder, net)

    def _total_steps(self) -> int:
        tr = self.cfg.train
        batches = len(epoch_batches(self.index, tr.batch_size, tr.seed, 0))
        steps_per_epoch = max(1, math.ceil(batches / tr.gradient_accumulation_steps))
        return tr.max_train_steps or steps_per_epoch * tr.epochs

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

    def _prepare_text_cache(self) -> TextCache | None:
        tr, data, net = self.cfg.train, self.cfg.data, self.cfg.network
        blocker = text_cache_blocker(
            tr.cache_text_encoder_outputs,
            net.train_text_encoder,
            data.shuffle_caption,
            data.caption_dropout_rate,
        )
        if blocker:
            log.info("Text-encoder outputs are not cached: %s", blocker)
            return None
        cache = TextCache(self.model.encode_prompt, self.model.tokenize)
        cache.fill([item.caption for item in self.index.items])
        log.info("Text-encoder outputs cached for %d distinct captions", len(cache.memory))
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
        captions = [make_caption(i.caption, data, self.rng) for i in items]
        if self.text_cache is not None:
            cond = self.text_cache.get(captions).to(dev)
        else:
            with torch.set_grad_enabled(self.cfg.network.train_text_encoder and torch.is_grad_enabled()):
                cond = m.encode_prompt(m.tokenize(captions))
        with self.acc.autocast():
            pred = m.predict(noisy.to(cond.dtype), t, cond)
        return F.mse_loss(pred.float(), m.target(latents, noise, t).float())

    # --- the loop -------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg, acc, tr = self.cfg, self.acc, self.cfg.train
        torch.manual_seed(tr.seed)
        pos = self._resume()
        self.model.unet.train()
        started = time.time()
        bar = tqdm(
            total=self.total_steps,
            initial=pos.step,
            desc="Training",
            unit="step",
            disable=not acc.is_main_process,
        )
        self.stop_requested = False
        window = None  # summed losses of this optimiser step's micro-batches, checked for NaN once per step
        previous = _catch_ctrl_c(self)
        try:
            while pos.step < self.total_steps:
                batches = epoch_batches(self.index, tr.batch_size, tr.seed, pos.epoch)
                while pos.batch < len(batches) and pos.step < self.total_steps:
                    loss = self._micro_step(batches[pos.batch], pos)
                    window = loss if window is None else window + loss  # stays on the device: no sync
                    pos.batch += 1
                    if acc.sync_gradients:
                        self._after_step(pos, loss, window, bar)
                        window = None
                        if self.stop_requested:  # Ctrl-C: stop on a step boundary, where the state is whole
                            raise KeyboardInterrupt
                if pos.batch >= len(batches):
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                    self._after_epoch(pos)
        except KeyboardInterrupt:
            bar.close()
            self._save_checkpoint(pos, reason="interrupted")
            raise
        finally:
            _restore_ctrl_c(previous)
        bar.close()
        path = self.save(cfg.output.name(), pos.step)
        if self.sampler.specs and pos.step not in self.sampler.done:
            self.sample(pos.step)
        acc.end_training()
        return TrainResult(
            lora_path=path,
            steps=pos.step,
            losses=pos.losses,
            seconds=time.time() - started,
            samples=self.sampler.done,
        )

    def _micro_step(self, batch: list[ImageItem], pos: Position) -> torch.Tensor:
        tr, acc = self.cfg.train, self.acc
        with acc.accumulate(self.model.unet):
            loss = self._backward_in_pieces(batch, pos)
            if acc.sync_gradients and tr.max_grad_norm > 0:
                acc.clip_grad_norm_(self.trainable, tr.max_grad_norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def _backward_in_pieces(self, batch: list[ImageItem], pos: Position) -> torch.Tensor:
        """Backward over the batch in micro-batches, weighted so the gradient is the whole batch's.
        On out-of-memory the failing piece is halved (same effective batch, same step)."""
        pending, total = chunks(batch, self.micro_batch or len(batch)), None
        while pending:
            piece = pending.pop(0)
            try:
                loss = self.loss_for(piece) * (len(piece) / len(batch))
                self.acc.backward(loss)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                pending = self._split_after_oom(piece, pos) + pending
                continue
            total = loss.detach().float() if total is None else total + loss.detach().float()
        return total

    def _split_after_oom(self, piece: list[ImageItem], pos: Position) -> list[list[ImageItem]]:
        free_memory()
        if len(piece) == 1:
            raise TrainingError(
                f"Out of memory at step {pos.step + 1} even with one image at a time",
                "Lower resolution, set mixed_precision: fp16 or bf16, gradient_checkpointing: true and "
                "cache_latents: memory, or close other programs using the GPU",
            )
        self.micro_batch = len(piece) // 2
        log.warning(
            "Out of memory at step %d: micro-batch halved to %d image(s) and gradient accumulation "
            "doubled, same effective batch; continuing",
            pos.step + 1,
            self.micro_batch,
        )
        return chunks(piece, self.micro_batch)

    def _after_step(self, pos: Position, loss: torch.Tensor, window: torch.Tensor, bar) -> None:
        if not math.isfinite(window.item()):  # before anything is saved from this step
            raise self._nan_error(pos)
        pos.step += 1
        pos.losses.append(loss.item())
        lr = self.lr_scheduler.get_last_lr()[0]
        recent = pos.losses[-20:]
        bar.update(1)
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.2e}", epoch=pos.epoch + 1)
        self.acc.log({"loss": pos.losses[-1], "lr": lr}, step=pos.step)
        if pos.step % 10 == 0 or pos.step == 1:
            log.info("step %d epoch %d loss %.5f lr %.3e", pos.step, pos.epoch + 1, pos.losses[-1], lr)
        save_steps = self.cfg.output.save_steps
        if save_steps and pos.step % save_steps == 0 and pos.step < self.total_steps:
            self._save_checkpoint(pos)
        if self.sampler.due(pos.step) and pos.step < self.total_steps:
            self.sample(pos.step)

    def _after_epoch(self, pos: Position) -> None:
        self.facts.epoch = pos.epoch
        if self.sampler.due(pos.step, epoch_end=pos.epoch) and pos.step < self.total_steps:
            self.sample(pos.step)
        every = self.cfg.output.save_every_n_epochs
        if every and pos.epoch % every == 0 and pos.step < self.total_steps:
            self.save(f"{self.cfg.output.name()}-epoch{pos.epoch:04d}", pos.step)

    def sample(self, step: int) -> None:
        unwrap = self.acc.unwrap_model
        pipe = self.model.pipeline(unet=unwrap(self.model.unet), text_encoder=unwrap(self.model.text_encoder))
        self.sampler.render(pipe, step, self.acc)

    # --- checkpoints ----------------------------------------------------------------------------
    def _state_objects(self) -> dict:
        return {
            "lora": ParamSet(self.trainable_named()),
            "optimizer": self.optimizer,
            "lr_scheduler": self.lr_scheduler,
            "scaler": self.acc.scaler,
        }

    def trainable_named(self) -> dict[str, torch.nn.Parameter]:
        out = {}
        for prefix, module in (("unet", self.model.unet), ("te", self.model.text_encoder)):
            out.update({f"{prefix}.{n}": p for n, p in module.named_parameters() if p.requires_grad})
        return out

    def _save_checkpoint(self, pos: Position, reason: str = "") -> None:
        lora = self.save(f"{self.cfg.output.name()}-step{pos.step:06d}", pos.step)
        if self.cfg.output.save_state or reason:
            state = save_state(
                self.out_dir, pos, self.rng, self._state_objects(), self.cfg.output.keep_last_n
            )
            self.last_good = state
            if reason:
                log.warning(
                    "Training %s at step %d. Saved %s and the state %s; continue with `resume: auto`.",
                    reason,
                    pos.step,
                    lora,
                    state,
                )

    def _resume(self) -> Position:
        path = find_state(self.cfg.train.resume, self.out_dir)
        if path is None:
            if self.cfg.train.resume == "auto":
                log.info("resume: auto found no saved state in %s; starting fresh", self.out_dir)
            return Position()
        pos = load_state(path, self.rng, self._state_objects())
        self.facts.epoch = pos.epoch
        log.info("Resumed from %s (step %d, epoch %d)", path, pos.step, pos.epoch + 1)
        return pos

    def _nan_error(self, pos: Position) -> TrainingError:
        last = self.last_good or "none yet (no checkpoint was saved before this step)"
        fp16 = self.acc.mixed_precision == "fp16"
        return TrainingError(
            f"The loss became NaN/inf at step {pos.step + 1}; training stopped and nothing more was saved. "
            f"Last good checkpoint: {last}",
            (
                "Likely causes: fp16 overflow (try mixed_precision: bf16 or no), or "
                if fp16
                else "Likely cause: "
            )
            + "a learning rate that is too high (try half of it)",
        )

    def save(self, stem: str, step: int) -> Path:
        self.facts.steps = step
        parts = {"unet": read_weights(self.acc.unwrap_model(self.model.unet))}
        te = self.acc.unwrap_model(self.model.text_encoder)
        if lora_layers(te):
            parts["te"] = read_weights(te)
        path = save_lora(parts, self.out_dir / f"{stem}.safetensors", self.cfg, self.facts)
        log.info("Saved %s", path)
        return path


def _catch_ctrl_c(trainer: Trainer):
    """First Ctrl-C: finish the current step, save, stop. Second Ctrl-C: stop at once."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        log.warning(
            "Ctrl-C: finishing this step, then saving the LoRA and the training state "
            "(Ctrl-C again to quit now)"
        )

    return signal.signal(signal.SIGINT, handler)


def _restore_ctrl_c(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _tag_frequency(index: DatasetIndex) -> dict[str, dict[str, int]]:
    counts: dict[str, int] = {}
    for item in index.items:
        for tag in (t.strip() for t in item.caption.split(",")):
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return {index.root.name: counts}
