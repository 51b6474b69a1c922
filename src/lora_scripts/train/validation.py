"""Held-out images: a loss that shows whether the LoRA generalises, and the overfitting alarm.

Every score uses the same noise and timesteps for each image (a generator seeded per image), captions as
written (no shuffle, no dropout, no flips) and eval mode, inside a forked RNG: the curve is comparable from
score to score, and training's random stream is untouched (resume stays bit-exact).
"""

from __future__ import annotations

import logging
import random
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import torch

from ..config import DataConfig
from ..data import DatasetIndex, ImageItem, scan_dataset
from ..errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")
SEED = 20_240_601  # fixed: the noise of held-out image i is always drawn from SEED + i


def split_validation(index: DatasetIndex, data: DataConfig) -> tuple[DatasetIndex, list[ImageItem]]:
    """(images to train on, held-out images): an evenly spread, deterministic share of the folder and/or
    a separate validation_dir."""
    held: list[ImageItem] = []
    items = sorted(index.items, key=lambda i: str(i.path))
    if data.validation_split:
        items, held = hold_out(items, data.validation_split, "validation_split", "images")
    if data.validation_dir:
        extra = scan_dataset(
            # its own images only: the regularisation images were scanned with the training folder
            data.model_copy(
                update={"train_data_dir": data.validation_dir, "metadata_path": None, "reg_data_dir": None}
            ),
            "validation_dir",
        )
        held += extra.items
    if not held:
        return index, []
    return replace(index, items=items), held


def hold_out(items: list[T], k: float, key: str, noun: str) -> tuple[list[T], list[T]]:
    """(kept, held out): a fraction `k` < 1 or a count `k` >= 1 of `items`, evenly spread; one for images
    (validation_split) and chat data (eval_split)."""
    if not k:
        return items, []
    count = int(k) if k >= 1 else max(1, round(len(items) * k))
    if count >= len(items):
        raise ConfigError(
            f"{key} {k:g} holds out {count} of the {len(items)} {noun}, leaving none to train on",
            f"Use a smaller {key} (e.g. 0.1) or add {noun}",
        )
    picks = spread(len(items), count)
    return [x for i, x in enumerate(items) if i not in picks], [x for i, x in enumerate(items) if i in picks]


def spread(total: int, count: int) -> set[int]:
    """`count` positions evenly spread over `total` (the held-out share: deterministic, not clustered)."""
    return {round((j + 0.5) * total / count - 0.5) for j in range(count)}


@dataclass
class Score:
    step: int
    loss: float
    train_loss: float | None  # median of the training losses since the previous evaluation


@dataclass
class Validation:
    items: list[ImageItem]
    patience: int
    scores: list[Score] = field(default_factory=list)
    alarm: str = ""  # the overfitting warning, once given
    alarm_best: Score | None = None  # the best score when the alarm was given
    alarm_step: int = 0  # the step whose score gave it

    def measure(self, model, data: DataConfig, train, accelerator, step: int, recent: list[float]) -> Score:
        """The held-out score of the model as it is now; kept only once `record`ed (a measurement a stop
        request abandoned, or that another process did not finish, is not a score of the run)."""
        data = data.for_scoring()
        modules = list(model.adapter_modules().values())
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        total = 0.0
        try:
            with torch.random.fork_rng(), torch.no_grad(), accelerator.autocast():
                for i, item in enumerate(self.items):
                    generator = torch.Generator().manual_seed(SEED + i)
                    total += float(model.loss([item], data, train, random.Random(SEED + i), generator))
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)
        # The median: one step's loss swings 100x with its random timestep, and a mean follows the outliers,
        # so "the training loss kept falling" was a coin toss on small sets.
        return Score(step, total / len(self.items), statistics.median(recent) if recent else None)

    @property
    def best(self) -> Score | None:
        trained = [s for s in self.scores if s.step > 0]
        return min(trained, key=lambda s: s.loss) if trained else None

    def overfitting(self) -> bool:
        """The held-out loss rose `patience` times in a row while the training loss kept falling."""
        if self.alarm or len(self.scores) < self.patience + 1:
            return False
        window = self.scores[-(self.patience + 1) :]
        rising = all(b.loss > a.loss for a, b in zip(window, window[1:], strict=False))
        first, last = window[0].train_loss, window[-1].train_loss
        return rising and first is not None and last is not None and last < first

    def summary(self) -> str:
        base = next((s for s in self.scores if s.step == 0), None)
        final = self.scores[-1]
        if base is None or base.loss == 0:
            return f"Held-out loss at step {final.step}: {final.loss:.5f}"
        change = (final.loss - base.loss) / base.loss * 100
        noun = getattr(self.items[0], "NOUN", "images")  # chat rows: "conversations"
        return (
            f"Held-out loss ({len(self.items)} {noun}): base model {base.loss:.5f} -> this LoRA "
            f"{final.loss:.5f} ({change:+.1f} %)"
        )


def alarm_text(best: Score, best_file: Path | None, patience: int) -> str:
    where = f", saved as {best_file.name}" if best_file else ""
    times = f"{patience} time{'s' if patience > 1 else ''}"
    return (
        f"Possible overfitting: the held-out loss has risen {times} in a row while the training loss kept "
        f"falling. The best LoRA so far is from step {best.step} (held-out loss {best.loss:.5f}{where}). "
        "Try fewer epochs or a lower learning_rate, or set early_stopping: true"
    )


class HeldOutWatch:
    """What the loop calls: scores at the planned steps, keeps the best weights (in memory and as
    NAME-best.safetensors), stamps checkpoints with their score, and raises the overfitting alarm."""

    def __init__(self, trainer, items: list[ImageItem]):
        self.trainer = trainer
        self.validation = Validation(items, trainer.cfg.train.validation_patience)
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.best_file: Path | None = None
        self.stop = False  # early_stopping asked to stop here

    def due(self, step: int, epoch_end: bool) -> bool:
        every = self.trainer.cfg.train.validation_steps
        return (epoch_end and not every) or (bool(every) and not epoch_end and step % every == 0)

    def run(self, step: int, losses: list[float]) -> Score:
        return self.record(self.measure(step, losses))

    def measure(self, step: int, losses: list[float]) -> Score:
        """Score the held-out set; `losses` are the run's training losses so far, of which the last
        validation interval's (at least 20) tell the training trend."""
        t = self.trainer
        recent = losses[-max(20, t.cfg.train.validation_steps or 0) :]
        return self.validation.measure(t.model, t.cfg.data_section, t.cfg.train, t.acc, step, recent)

    def record(self, score: Score) -> Score:
        """Keep a measured score: logged, the best weights saved (every process takes part in the save)
        and the overfitting alarm checked."""
        t, step = self.trainer, score.step
        self.validation.scores.append(score)
        t.acc.log({"val_loss": score.loss}, step=step)
        t.facts.validation = {"ss_validation_loss": f"{score.loss:.6f}", "ss_validation_step": str(step)}
        log.info("step %d held-out loss %.5f", step, score.loss)
        if step > 0 and score is self.validation.best:
            params = t.checkpoints.trainable_named()
            self.best_weights = {n: p.detach().clone() for n, p in params.items()}
            self.best_file = t.checkpoints.save_lora(f"{t.cfg.output.name()}-best", step)
        if self.validation.overfitting() and self.validation.best is not None:
            self.validation.alarm_best, self.validation.alarm_step = self.validation.best, step
            self.validation.alarm = alarm_text(self.validation.best, self.best_file, self.validation.patience)
            log.warning("%s", self.validation.alarm)
            self.stop = t.cfg.train.early_stopping
        return score

    def restore_best(self) -> int:
        """early_stopping: put the best weights back for the final file; returns their step."""
        best = self.validation.best
        with torch.no_grad():
            for name, p in self.trainer.checkpoints.trainable_named().items():
                p.copy_(self.best_weights[name])
        self.trainer.facts.validation = {
            "ss_validation_loss": f"{best.loss:.6f}",
            "ss_validation_step": str(best.step),
        }
        log.warning("early_stopping: the final LoRA is the best one, from step %d", best.step)
        return best.step
