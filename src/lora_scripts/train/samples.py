"""Sample images during training, drawn by the model family, saved as PNGs and logged to TensorBoard."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import SampleConfig
from ..errors import LoraScriptsError
from ..models.family import TrainableModel
from ..models.render import RenderRequest
from ..save.png import parameters_text, save_png
from .memory import free_memory, is_oom
from .replies import replies_to_tensorboard, save_replies

log = logging.getLogger(__name__)
# What making a sample can fail with that is not a bug here: out of memory and other device errors
# (RuntimeError), a full or unwritable disk (OSError, OutputError), a setting the pipeline refuses
# (ValueError, ConfigError). Anything else (TypeError, AttributeError...) is a bug and stops the run.
SAMPLE_FAILURES = (LoraScriptsError, OSError, RuntimeError, ValueError)


class Sampler:
    def __init__(self, cfg: SampleConfig, resolution: int | None, folder: Path, system: str | None = None):
        size = cfg.sample_size or resolution
        self.specs = [
            RenderRequest(
                text,
                negative_prompt=cfg.sample_negative_prompt,
                seed=cfg.sample_seed + i,
                steps=cfg.sample_steps,
                cfg_scale=cfg.sample_cfg_scale,
                width=size,
                height=size,
                sampler=cfg.sample_sampler,
                system=system or "",
            )
            for i, text in enumerate(cfg.sample_prompts)
        ]
        self.cfg, self.folder = cfg, folder
        self.done: dict[int, list[Path]] = {}  # step -> image files, for report.html

    def due(self, step: int, epoch_end: int | None = None) -> bool:
        if not self.specs:
            return False
        if epoch_end is not None:
            return bool(self.cfg.sample_every_n_epochs) and epoch_end % self.cfg.sample_every_n_epochs == 0
        return bool(self.cfg.sample_every_n_steps) and step % self.cfg.sample_every_n_steps == 0

    def render(self, model: TrainableModel, step: int, accelerator) -> list[Image.Image]:
        """Render every prompt with the model as it is now; training RNG and train/eval mode are kept.

        A sample that cannot be made (out of memory, a full or unwritable disk, a pipeline that refuses
        a setting) is logged and skipped: samples are for watching, losing the run over them is worse.
        """
        try:
            images = self._generate(model, accelerator)
            self.folder.mkdir(parents=True, exist_ok=True)
            if model.info.sample_kind == "text":  # (base, LoRA) replies: a JSON file and TensorBoard text
                self.done[step] = [save_replies(self.specs, images, self.folder / f"step{step:06d}.json")]
                replies_to_tensorboard(accelerator, self.specs, images, step)
                log.info("Sample replies at step %d: %s", step, self.done[step][0])
                return images
            self.done[step] = [
                save_png(img, self.folder / f"step{step:06d}-{i:02d}.png", parameters_text(spec))
                for i, (img, spec) in enumerate(zip(images, self.specs, strict=True))
            ]
        except SAMPLE_FAILURES as exc:
            if is_oom(exc):
                free_memory()
            log.warning(
                "Samples at step %d were skipped (%s: %s); training continues",
                step,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return []
        _log_to_tensorboard(accelerator, images, step)
        log.info("Samples at step %d: %s", step, self.folder)
        return images

    def _generate(self, model: TrainableModel, accelerator) -> list[Image.Image]:
        modules = list(model.adapter_modules().values())
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            with torch.random.fork_rng(), torch.no_grad(), accelerator.autocast():
                return model.render(self.specs)
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)


def _log_to_tensorboard(accelerator, images: list[Image.Image], step: int) -> None:
    """Add the samples to TensorBoard when the run has that tracker. (accelerate's get_tracker raises
    ValueError for a missing one, or returns a blank tracker without add_image when there are none.)"""
    tracker = next((t for t in accelerator.trackers if t.name == "tensorboard"), None)
    if tracker is None:
        return
    try:
        for i, img in enumerate(images):
            tracker.tracker.add_image(f"samples/{i:02d}", np.asarray(img), step, dataformats="HWC")
    except (OSError, RuntimeError, ValueError) as exc:  # the PNGs are saved; only this copy is lost
        log.warning(
            "Samples at step %d were saved but not added to TensorBoard (%s: %s)",
            step,
            type(exc).__name__,
            exc,
        )
