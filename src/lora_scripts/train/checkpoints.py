"""LoRA files and training states during a run: save (each complete or absent), resume. No family names."""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator

from ..config import Config
from ..errors import OutputError
from ..inject.lora import lora_layers, read_weights
from ..models.family import TrainableModel
from ..save.metadata import RunFacts
from ..save.writer import adapter_path, save_adapter
from .fingerprint import differences
from .setup import network_facts
from .sharding import is_sharded, whole, whole_params
from .state import ParamSet, Position, find_state, load_state, save_state, state_fingerprint

log = logging.getLogger(__name__)
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class Checkpoints:
    def __init__(
        self,
        cfg: Config,
        model: TrainableModel,
        acc: Accelerator,
        facts: RunFacts,
        fingerprint: dict[str, str],
    ):
        self.cfg, self.model, self.acc, self.facts = cfg, model, acc, facts
        self.fingerprint = fingerprint
        self.out_dir = cfg.output.output_dir
        self.optimizer = self.lr_scheduler = None
        self.last_good: Path | None = None  # newest training state saved, named when a NaN stops the run
        self.saved: list[tuple[int, Path, str]] = []  # step checkpoints: step, file, held-out loss then

    def attach(self, optimizer, lr_scheduler) -> None:
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

    def adapters(self) -> dict[str, torch.nn.Module]:
        return {c: self.acc.unwrap_model(m) for c, m in self.model.adapter_modules().items()}

    def trainable_named(self) -> dict[str, torch.nn.Parameter]:
        out = {}
        for component, module in self.adapters().items():
            prefix = component + "."
            out.update({prefix + n: p for n, p in module.named_parameters() if p.requires_grad})
        return out

    def save_lora(self, stem: str, step: int) -> Path:
        self.facts.steps = step
        # FSDP / DeepSpeed ZeRO-3 hold a part of each tensor on each process: gathered, every process
        # reads the whole LoRA and process 0 writes it, in the format of every other run
        with whole_params(self.acc, list(self.model.adapter_modules().values())):
            modules = {c: m for c, m in self.adapters().items() if lora_layers(m)}
            self.facts.network = network_facts(modules)
            parts = whole({c: read_weights(m) for c, m in modules.items()}, copy=is_sharded(self.acc))
        fmt = self.model.info.adapter_format
        path = adapter_path(self.out_dir, stem, fmt)
        if self.acc.is_main_process:  # data-parallel processes hold the same weights: one writes them
            with self.disk_full_is_a_sentence(path.name):
                path = save_adapter(parts, path, self.cfg, self.facts, fmt)
            log.info("Saved %s", path)
        self.acc.wait_for_everyone()
        return path

    @contextlib.contextmanager
    def disk_full_is_a_sentence(self, what: str) -> Iterator[None]:
        """A full disk while saving: the temp file is already gone (atomic writes), the newest complete
        checkpoint stays, and the user reads what to free instead of a serialiser's 'unexpected pos'."""
        try:
            yield
        # torch.save says RuntimeError, safetensors SafetensorError: which error it was is judged by the disk
        except Exception as exc:
            if not _disk_full(exc, self.out_dir):
                raise
            last = self.last_good or "none saved yet"
            raise OutputError(
                f"The disk of '{self.out_dir}' is full: {what} could not be saved (newest complete "
                f"training state: {last})",
                "Free some space there (old LoRA files, latent_cache/, other runs) or choose another "
                "output_dir, then continue with resume: auto",
            ) from exc

    def save(self, pos: Position, rng: random.Random, reason: str = "") -> Path:
        """A step checkpoint: the LoRA, and the training state when asked (always on an interruption)."""
        lora = self.save_lora(f"{self.cfg.output.name()}-step{pos.step:06d}", pos.step)
        self.saved.append((pos.step, lora, self.facts.validation.get("ss_validation_loss", "")))
        if not (self.cfg.output.save_state or reason):
            return lora
        if is_sharded(self.acc):  # each process holds a part of the optimiser's state (train/sharding)
            log.warning(
                "Training %s at step %d. Saved %s (no training state under FSDP/DeepSpeed)",
                reason,
                pos.step,
                lora,
            )
            return lora
        state = None
        if self.acc.is_main_process:
            with self.disk_full_is_a_sentence(f"the training state of step {pos.step}"):
                objects, keep = self._state_objects(), self.cfg.output.keep_last_n
                state = save_state(self.out_dir, pos, rng, objects, keep, self.fingerprint)
        self.acc.wait_for_everyone()
        self.last_good = state
        if reason:
            log.warning(
                "Training %s at step %d. Saved %s and the state %s; continue with `resume: auto`.",
                reason,
                pos.step,
                lora,
                state,
            )
        return lora

    def resume(self, rng: random.Random) -> Position:
        path = find_state(self.cfg.train.resume, self.out_dir, self.fingerprint)
        if path is None:
            if self.cfg.train.resume == "auto":
                log.info("resume: auto found no saved state in %s; starting fresh", self.out_dir)
            return Position()
        diff = differences(state_fingerprint(path), self.fingerprint)
        if diff:  # only a state named explicitly gets here with differences
            log.warning("The state %s was made with other settings: %s", path, "; ".join(diff))
        pos = load_state(path, rng, self._state_objects())
        self.facts.epoch = pos.epoch
        why = "same data, base model and settings" if not diff else "named in resume"
        start = (
            f", which started from init_lora {self.cfg.network.init_lora}"
            if self.cfg.network.init_lora
            else ""
        )
        log.info("Resumed from %s (step %d, epoch %d; %s%s)", path, pos.step, pos.epoch + 1, why, start)
        return pos

    def _state_objects(self) -> dict:
        return {
            "lora": ParamSet(self.trainable_named()),
            "optimizer": self.optimizer,
            "lr_scheduler": self.lr_scheduler,
            "scaler": self.acc.scaler,
        }


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL
    if "No space left on device" in str(exc):
        return True
    try:
        return shutil.disk_usage(folder).free < 16 * 2**20
    except OSError:
        return False
