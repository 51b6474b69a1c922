"""The training loop, on accelerate. It knows no model family: the model gives the loss (models/family.py)."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from ..config import Config
from ..data import DatasetIndex, ImageItem
from ..errors import TrainingError
from ..inject.max_norm import NormStats, apply_max_norm
from ..models.family import TrainableModel
from ..progress import ProgressLog
from ..save.metadata import RunFacts, lineage_facts
from ..stopping import GracefulStop
from .checkpoints import Checkpoints
from .fingerprint import run_fingerprint
from .memory import chunks, free_memory, is_oom, probe_batch_size
from .optim import make_lr_scheduler, make_optimizer
from .samples import Sampler
from .setup import RunPlan, cast_frozen, inject_adapters, param_groups, plan_steps
from .sharding import fill_deepspeed_batch, is_sharded
from .state import Position
from .validation import HeldOutWatch, Validation

log = logging.getLogger(__name__)
ESTIMATE_AFTER = 4  # steps measured before the time estimate (the first one, with warm-up, excluded)


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    losses: list[float]
    seconds: float
    samples: dict[int, list[Path]]
    plan: RunPlan
    precision: str = "no"  # the mixed precision that really ran
    stopped: bool = False  # Ctrl-C / SIGTERM: lora_path is the checkpoint saved at `steps`
    validation: Validation | None = None  # held-out scores and the overfitting alarm
    checkpoints: list[tuple[int, Path, str]] = field(default_factory=list)  # step, file, held-out loss


class Trainer:
    def __init__(
        self,
        cfg: Config,
        model: TrainableModel,
        index: DatasetIndex,  # or any training set with items, batches(), facts(), data_id()
        accelerator: Accelerator,
        held_out: list[ImageItem] | None = None,
    ):
        self.cfg, self.model, self.index, self.acc = cfg, model, index, accelerator
        self.out_dir = cfg.output.output_dir
        self.rng = random.Random(cfg.train.seed)  # data augmentation (flips, caption shuffle/dropout)
        self.micro_batch: int | None = None  # None: whole batch at once; halved on out-of-memory
        self.trained = model.trained_components(cfg.network)
        # --- setup: precision, LoRA layers, precomputed inputs, batch size, step plan, optimiser ---------
        cast_frozen(model, accelerator)
        inject_adapters(model, cfg.network, self.trained)  # before caching: init_lora's TE part acts on it
        groups = param_groups(model, self.trained, cfg.train)
        self.trainable = [p for g in groups for p in g["params"]]
        for component in self.trained if cfg.train.gradient_checkpointing else []:
            model.enable_gradient_checkpointing(component)
        batch_size = cfg.train.batch_size
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        if batch_size == "auto" and self.world > 1:  # each process would find its own size: out of step
            raise TrainingError(
                "batch_size: auto cannot be used with several processes",
                "Set a number (the batch of one step, split among the processes)",
            )
        # a loss over tokens weighs each row by its trained tokens: the shares of a split batch must too
        self.weight = getattr(model, "loss_weight", len)
        # the caches before anything sizes memory: a family may keep modules off the device until they are
        # filled (models/offload), and the batch-size probe then measures the steps as they will run
        everything = replace(index, items=index.items + list(held_out or []))  # caches cover held-out too
        cache = self.out_dir / "latent_cache"
        with accelerator.main_process_first():  # process 0 writes the caches, the others then read them
            model.prepare_inputs(everything, cfg.data_section, cfg.train, self.trained, cache)
        if batch_size == "auto":
            batch_size = probe_batch_size(self, groups)
        self.plan = plan_steps(index, cfg.train, batch_size)
        self.total_steps = self.plan.total_steps
        fill_deepspeed_batch(accelerator, batch_size)  # DeepSpeed's config wants the per-process batch
        optimizer = make_optimizer(groups, cfg.train)
        scheduler = make_lr_scheduler(optimizer, cfg.train, self.total_steps)
        # modules, optimiser and schedule in one call: FSDP shards the modules and points the optimiser at
        # the shards, DeepSpeed makes one engine of the three (DDP wraps the modules either way)
        modules = model.adapter_modules()
        *prepared, self.optimizer, self.lr_scheduler = accelerator.prepare(
            *(modules[c] for c in self.trained), optimizer, scheduler
        )
        for component, module in zip(self.trained, prepared, strict=True):
            model.replace_module(component, module)
        if is_sharded(accelerator):  # the sharded parameters the optimiser now steps, for clipping
            self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.facts = RunFacts(
            family=model.info.name,
            family_facts=model.metadata_facts(),
            batch_size=batch_size,
            mixed_precision=accelerator.mixed_precision,
            lineage=lineage_facts(cfg.network.init_lora) if cfg.network.init_lora else {},
            **index.facts(),
        )
        self.checkpoints = Checkpoints(cfg, model, accelerator, self.facts, run_fingerprint(cfg, index))
        self.checkpoints.attach(self.optimizer, self.lr_scheduler)
        resolution = getattr(cfg.data_section, "resolution", None)  # samples are the image route's
        system = getattr(cfg.data_section, "system_prompt", None)  # chat samples ask as training does
        self.sampler = Sampler(cfg.sample, resolution, self.out_dir / "samples", system)
        self.held_out = HeldOutWatch(self, held_out) if held_out else None
        self.progress = ProgressLog(self.out_dir, accelerator.is_main_process)  # for the web UI
        self.norms: NormStats | None = None  # scale_weight_norms: what the last step's max-norm did

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    def loss_for(
        self, items: list[ImageItem], generator: torch.Generator | None = None, part: list[int] | None = None
    ) -> torch.Tensor:
        with self.acc.autocast():
            return self.model.loss(items, self.cfg.data_section, self.cfg.train, self.rng, generator, part)

    # --- the loop -------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg, acc, tr = self.cfg, self.acc, self.cfg.train
        torch.manual_seed(tr.seed)
        pos = self.checkpoints.resume(self.rng)
        modules = self.model.adapter_modules()
        for component in self.trained:
            modules[component].train()
        started = time.time()
        self.step_times = [started]  # for the time estimate after the first steps
        bar = tqdm(
            total=self.total_steps,
            initial=pos.step,
            desc="Training",
            unit="step",
            disable=not acc.is_main_process,
        )
        self.between_steps = False  # sampling or scoring: a stop request ends them at once
        # the first Ctrl-C/SIGTERM: finish the step, save, stop; a second, or one between steps: at once
        self.stop = GracefulStop(_say_stopping, at_once=lambda: self.between_steps)
        self.partial: TrainResult | None = None  # what was saved when the run was stopped, for the report
        if self.held_out and pos.step == 0:
            base = self.held_out.run(0, [])
            log.info("Held-out loss of the starting model: %.5f", base.loss)
        self.progress.event("start", step=pos.step, total=self.total_steps)
        with self.stop:
            self._steps(pos, bar, started)
        bar.close()
        final_step = pos.step
        if self.held_out:
            if self.held_out.stop:
                final_step = self.held_out.restore_best()
            elif self.held_out.validation.scores[-1].step != pos.step:
                self.held_out.run(pos.step, pos.losses)
            log.info("%s", self.held_out.validation.summary())
        path = self.checkpoints.save_lora(cfg.output.name(), final_step)
        if self.sampler.specs and pos.step not in self.sampler.done:
            self.sample(pos.step)
        acc.end_training()
        self.progress.event("end", step=pos.step, state="done")
        return self._result(path, pos, started)

    def _steps(self, pos: Position, bar, started: float) -> None:
        """Steps until the plan's end or early stopping; stopped (Ctrl-C): the LoRA and state saved first."""
        tr = self.cfg.train
        try:
            while pos.step < self.total_steps:
                batches = self.index.batches(self.batch_size, tr.seed, pos.epoch)
                while pos.batch < len(batches) and pos.step < self.total_steps:
                    window = batches[pos.batch : pos.batch + self.plan.accumulation]
                    mean_loss = self._optimizer_step(window, pos)
                    pos.batch += len(window)
                    self._after_step(pos, mean_loss, bar)
                    if self._stop_agreed():  # Ctrl-C: stop on a step boundary, where the state is whole
                        raise KeyboardInterrupt
                    if self.held_out and self.held_out.stop:
                        return
                if pos.batch >= len(batches):
                    pos.epoch, pos.batch = pos.epoch + 1, 0
                    self._after_epoch(pos)
                    if self._stop_agreed():  # asked during the epoch's samples
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            lora = self.checkpoints.save(pos, self.rng, reason="interrupted")
            self.partial = self._result(lora, pos, started, stopped=True)
            self.progress.event("end", step=pos.step, state="stopped")
            raise

    def _stop_agreed(self) -> bool:
        """Whether any process was asked to stop: then all stop after this same step (one stopping alone
        would leave the others waiting in their next all-reduce; a signal reaches each at its own time)."""
        if self.world == 1:
            return self.stop.requested
        flag = torch.tensor([float(self.stop.requested)], device=self.acc.device)
        return bool(self.acc.reduce(flag, reduction="sum").item() > 0)

    def _result(self, path: Path, pos: Position, started: float, stopped: bool = False) -> TrainResult:
        return TrainResult(
            path,
            pos.step,
            pos.losses,
            time.time() - started,
            self.sampler.done,
            self.plan,
            self.acc.mixed_precision,
            stopped,
            self.held_out.validation if self.held_out else None,
            list(self.checkpoints.saved),
        )

    def _optimizer_step(self, window: list[list[ImageItem]], pos: Position) -> torch.Tensor:
        """One optimiser step over `window` (the accumulated micro-batches; fewer at an epoch's end, so an
        epoch is exactly its images). Each micro-batch's gradient is weighted 1/len(window): the step sees
        the window's mean loss, which is also what is logged."""
        tr, acc = self.cfg.train, self.acc
        total = None
        for i, batch in enumerate(window):
            last = i == len(window) - 1
            context = acc.no_sync(self._main_module()) if not last else contextlib.nullcontext()
            with context:
                if self.world == 1:
                    loss = self._backward_in_pieces(batch, pos, 1.0 / len(window))
                else:
                    loss = self._backward_my_part(batch, len(window))
            total = loss if total is None else total + loss  # stays on the device: no sync per micro-batch
        if self.world > 1:
            total = acc.reduce(total, "sum")  # the whole batch's loss: every process logs and checks it
        if not math.isfinite(total.item()):  # before the optimiser touches the weights
            raise self._nan_error(pos)
        if tr.max_grad_norm > 0:
            acc.clip_grad_norm_(self.trainable, tr.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if max_norm := self.cfg.network.scale_weight_norms:  # kohya's max-norm, on the weights just stepped
            modules = self.model.adapter_modules()
            self.norms = apply_max_norm([modules[c] for c in self.trained], max_norm)
        return total / len(window)

    def _backward_my_part(self, batch: list[ImageItem], window: int) -> torch.Tensor:
        """Data-parallel: every process draws the whole batch's noise, timesteps and augmentations (the same
        random streams on each, as one process draws them) and computes the loss of its part; the parts are
        weighted by their loss terms (an LLM's trained tokens), so the averaged gradient is the whole batch's.
        A process without items (a batch smaller than the processes) runs one at weight 0: gradients are
        averaged over every process at each step, so each must take part."""
        part = list(range(self.rank, len(batch), self.world))
        share = self.weight([batch[i] for i in part]) / max(self.weight(batch), 1) if part else 0.0
        loss = self.loss_for(batch, part=part or [0])
        self.acc.backward(loss * (share * self.world / window))  # DDP averages: * world undoes that
        return loss.detach().float() * share

    def _main_module(self) -> torch.nn.Module:
        return self.model.adapter_modules()[self.trained[0]]

    def _backward_in_pieces(self, batch: list[ImageItem], pos: Position, scale: float) -> torch.Tensor:
        """Backward over the batch in micro-batches, weighted so the gradient is the whole batch's.
        On out-of-memory the failing piece is halved (same effective batch, same step)."""
        pending, total = chunks(batch, self.micro_batch or len(batch)), None
        while pending:
            piece = pending.pop(0)
            try:
                loss = self.loss_for(piece) * (self.weight(piece) / max(self.weight(batch), 1))
                self.acc.backward(loss * scale)
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
            info = self.model.info
            raise TrainingError(
                f"Out of memory at step {pos.step + 1} even with one {info.item_noun} at a time",
                info.memory_hint,
            )
        self.micro_batch = len(piece) // 2
        log.warning(
            "Out of memory at step %d: micro-batch halved to %d %s(s) and gradient accumulation "
            "doubled, same effective batch; continuing",
            pos.step + 1,
            self.micro_batch,
            self.model.info.item_noun,
        )
        return chunks(piece, self.micro_batch)

    def _after_step(self, pos: Position, loss: torch.Tensor, bar) -> None:
        pos.step += 1
        pos.losses.append(loss.item())
        lr = self.lr_scheduler.get_last_lr()[0]
        recent = pos.losses[-20:]
        bar.update(1)
        norms = self.norms.logs() if self.norms else {}
        bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.2e}", epoch=pos.epoch + 1)
        self.acc.log({"loss": pos.losses[-1], "lr": lr, **norms}, step=pos.step)
        self.progress.step(pos.step, self.total_steps, pos.losses[-1], lr, pos.epoch + 1, **norms)
        if pos.step % 10 == 0 or pos.step == 1:
            scaled = self.norms.sentence() if self.norms else ""
            log.info(
                "step %d epoch %d loss %.5f lr %.3e%s", pos.step, pos.epoch + 1, pos.losses[-1], lr, scaled
            )
        self._estimate(pos.step)
        save_steps = self.cfg.output.save_steps
        if save_steps and pos.step % save_steps == 0 and pos.step < self.total_steps:
            self.checkpoints.save(pos, self.rng)
        if self.sampler.due(pos.step) and pos.step < self.total_steps:
            self.sample(pos.step)
        if self.held_out and self.held_out.due(pos.step, epoch_end=False) and pos.step < self.total_steps:
            self._held_out_score(pos)

    def _estimate(self, step: int) -> None:
        """After the first steps: the measured time per step and for the whole run (the first step, with
        its one-off costs, is left out), and on a CPU that real LoRAs need a GPU."""
        now = time.time()
        self.step_times.append(now)
        if len(self.step_times) != ESTIMATE_AFTER + 1 or step >= self.total_steps:
            return
        per_step = (now - self.step_times[1]) / (ESTIMATE_AFTER - 1)
        left = per_step * (self.total_steps - step)
        cpu = self.acc.device.type == "cpu"
        log.info(
            "Measured %.2f s per step: the remaining %d steps take about %s%s",
            per_step,
            self.total_steps - step,
            _duration(left),
            " on this CPU. Training on a CPU is for trying things out: a real LoRA needs an NVIDIA GPU"
            if cpu
            else "",
        )

    def _after_epoch(self, pos: Position) -> None:
        self.facts.epoch = pos.epoch
        if self.held_out and self.held_out.due(pos.step, epoch_end=True) and pos.step < self.total_steps:
            self._held_out_score(pos)
        if self.sampler.due(pos.step, epoch_end=pos.epoch) and pos.step < self.total_steps:
            self.sample(pos.step)
        every = self.cfg.output.save_every_n_epochs
        if every and pos.epoch % every == 0 and pos.step < self.total_steps:
            self.checkpoints.save_lora(f"{self.cfg.output.name()}-epoch{pos.epoch:04d}", pos.step)

    def sample(self, step: int) -> None:
        """Process 0 draws the samples, the others wait for it; a stop request while they are drawn
        abandons them and is agreed on at the next step boundary."""
        if self.acc.is_main_process:
            log.info("Drawing %d samples at step %d", len(self.sampler.specs), step)
            if self._abandonable(lambda: self.sampler.render(self.model, step, self.acc)):
                self.progress.samples(step, self.sampler.folder)
        self.acc.wait_for_everyone()

    def _held_out_score(self, pos: Position) -> None:
        """Every process scores the held-out set; the score is kept (and the best LoRA saved, which every
        process takes part in) only when none of them was asked to stop meanwhile."""
        measured = []
        self._abandonable(lambda: measured.append(self.held_out.measure(pos.step, pos.losses)))
        if self._stop_agreed():
            raise KeyboardInterrupt
        self.held_out.record(measured[0])

    def _abandonable(self, work: Callable[[], object]) -> bool:
        """Work between steps, where the state is whole (samples, held-out scores: minutes on a CPU): a stop
        request during it abandons it at once instead of after every image. The request is kept, not
        acted on here: in a multi-process run every process must stop after the same step (one leaving
        alone would leave the others waiting in a collective). Returns whether the work was done."""
        if self.stop.requested:
            return False
        self.between_steps = True
        try:
            work()
        except KeyboardInterrupt:
            self.between_steps = False
            self.stop.requested = True
            return False
        self.between_steps = False
        return True

    def _nan_error(self, pos: Position) -> TrainingError:
        last = self.checkpoints.last_good or "none yet (no checkpoint was saved before this step)"
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


def _say_stopping() -> None:
    log.warning(
        "Ctrl-C: finishing this step, then saving the LoRA and the training state (Ctrl-C again to quit now)"
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
