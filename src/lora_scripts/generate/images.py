"""Turn prompt specs into images with any SD pipeline, and save them with WebUI's `parameters` text."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..errors import ConfigError, OutputError
from ..models.render import render_one
from ..save import png
from ..save.atomic import nearest_existing, probe_writable
from .prompts import PromptSpec
from .samplers import sampler_name
from .stack import LoraStack

OnImage = Callable[[PromptSpec, Image.Image], None]


def generate_images(
    pipe,
    prompts: list[PromptSpec],
    loras: LoraStack | None = None,
    progress: bool | tqdm = True,
    on_image: OnImage | None = None,
) -> list[Image.Image]:
    """One image per spec, in order, seeded by `spec.seed` (same seed + settings = same image).

    `pipe` is any StableDiffusionPipeline (training passes `StableDiffusion.pipeline()`, whose LoRA is the
    one being trained); `loras` applies the specs' `<lora:...>` tags. The pipeline's scheduler is restored
    afterwards (models/render). `progress`: True for a bar over all steps of all images, or a bar to advance.
    """
    _check(prompts, loras)
    bar = progress if isinstance(progress, tqdm) else None
    if progress is True:
        bar = tqdm(total=sum(s.steps for s in prompts), desc="Generating", unit="step", dynamic_ncols=True)
    pipe.set_progress_bar_config(disable=True)
    images = []
    try:
        for spec in prompts:
            images.append(_one(pipe, spec, loras, bar))
            if on_image:
                on_image(spec, images[-1])
    finally:  # the scheduler is put back by render_one
        if loras is not None:
            loras.activate([])
        if progress is True and bar is not None:
            bar.close()
    return images


def _check(prompts: list[PromptSpec], loras: LoraStack | None) -> None:
    check_specs(prompts)
    for spec in prompts:
        if spec.loras and loras is None:
            raise ConfigError(
                f"The prompt '{spec.text}' has LoRA tags but no LoRAs are loaded", "Give a LoRA folder"
            )
        if loras is not None:
            loras.load([ref.name for ref in spec.loras])


def check_specs(prompts: list[PromptSpec]) -> None:
    """Settings that diffusers would only reject halfway through a batch."""
    for spec in prompts:
        if spec.width % 8 or spec.height % 8 or spec.width <= 0 or spec.height <= 0:
            raise ConfigError(
                f"Image size {spec.width}x{spec.height} is not a multiple of 8",
                "Use sizes like 512x512 or 512x768",
            )
        if spec.steps < 1:
            raise ConfigError(f"Steps must be at least 1, not {spec.steps}", "Use e.g. 20 steps")
        sampler_name(spec.sampler)  # an unknown sampler fails here, not after the model loads


def _one(pipe, spec: PromptSpec, loras: LoraStack | None, bar: tqdm | None) -> Image.Image:
    if loras is not None:
        loras.activate(spec.loras)
    return render_one(pipe, spec.request(), on_step=bar.update if bar is not None else None)


def parameters_text(
    spec: PromptSpec,
    model: str | None = None,
    lora_hashes: dict[str, str] | None = None,
    vae: str | None = None,
) -> str:
    """WebUI's PNG `parameters` text for a spec: its prompt with the LoRA tags, then the settings."""
    return png.parameters_text(spec.request(), spec.text, model, lora_hashes, vae)


def check_writable(folder: Path) -> None:
    """Fail before any work if `folder` cannot be created or written; creates nothing itself."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(
            f"The output folder '{folder}' cannot be created: '{existing}' is a file",
            "Choose another --out folder",
        )
    try:
        probe_writable(folder)
    except OSError as exc:
        raise OutputError(
            f"The output folder '{folder}' is not writable ({exc.strerror or exc})",
            "Choose another --out folder or fix its permissions",
        ) from exc


def next_index(folder: Path) -> int:
    """WebUI numbering: images are `00012-<seed>.png`; continue after the highest number in the folder."""
    numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := re.match(r"(\d{5,})-", p.name))]
    return max(numbers, default=-1) + 1
