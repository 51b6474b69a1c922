"""`lora-scripts generate`: check every input, load the base model and LoRAs, then run the batch."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ModelConfig
from ..errors import ConfigError
from ..progress import StageProgress, stage_progress
from .batch import Batch, plan_batch, run_batch
from .images import check_specs, check_writable
from .library import LoraLibrary
from .prompt_files import read_prompt_file
from .prompts import PromptSpec
from .samplers import sampler_name
from .stack import LoraStack

log = logging.getLogger(__name__)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class GenerateOptions:
    """What the `generate` command was asked for (CLI options, one to one)."""

    model: ModelConfig
    prompts: list[str] = field(default_factory=list)
    prompts_file: Path | None = None
    lora_dir: Path | None = None
    settings: dict = field(default_factory=dict)  # PromptSpec defaults: negative_prompt, steps, ...
    seeds: list[int] = field(default_factory=lambda: [-1])
    weights: list[float] | None = None
    sweep_lora: str | None = None
    out: Path = Path("outputs")
    grid: bool = True
    device: str = "auto"
    precision: str = "auto"


def plan(opts: GenerateOptions) -> tuple[Batch, LoraLibrary]:
    """Everything that can be checked without the model: prompts, tags, LoRA names, output folder."""
    settings = {**opts.settings, "sampler": sampler_name(opts.settings.get("sampler", "Euler a"))}
    specs = [PromptSpec.from_text(text, **settings) for text in opts.prompts]
    if opts.prompts_file is not None:
        specs += read_prompt_file(opts.prompts_file, settings)
    if not specs:
        raise ConfigError(
            "No prompt given", 'Add a prompt, e.g. "<lora:tech_phone:0.7> smartphone", or --prompts'
        )
    seeds = [s if s >= 0 else random.randrange(2**32) for s in opts.seeds]
    batch = plan_batch(specs, seeds, opts.weights, opts.sweep_lora)
    check_specs(batch.specs)
    library = LoraLibrary(opts.lora_dir)
    for name in sorted({ref.name for spec in batch.specs for ref in spec.loras}):
        library.find(name)
    check_writable(opts.out)
    return batch, library


def run_generate(opts: GenerateOptions) -> tuple[list[Path], Path | None]:
    with stage_progress("generate") as progress:  # images drawn, for the web UI's bar
        return _run_generate(opts, progress)


def _run_generate(opts: GenerateOptions, progress: StageProgress) -> tuple[list[Path], Path | None]:
    batch, library = plan(opts)
    progress.begin(len(batch.specs))
    from ..models.registry import load_model

    model = load_model(opts.model)  # SD 1.x/2.x or SDXL, by the family the base model is
    if model.info.sample_kind != "image":
        raise ConfigError(
            f"'{opts.model.base_model}' is a language model, not an image model",
            "Talk to it with: lora-scripts chat -m MODEL",
        )
    device, dtype = _device(opts.device, opts.precision)
    pipe = model.pipeline().to(device, dtype)
    stack = LoraStack(model.adapter_modules(), model.info.name, library)  # the pipeline's own modules
    stack.load(sorted({ref.name for spec in batch.specs for ref in spec.loras}))
    log.info("Generating %d image(s) on %s into %s", len(batch.specs), device, opts.out)
    try:
        counted = _Counted(pipe, progress)
        vae = Path(opts.model.vae).name if opts.model.vae else None
        return run_batch(counted, batch, stack, opts.out, Path(model.parts.source).stem, opts.grid, vae)
    finally:
        stack.close()


def _device(device: str, precision: str) -> tuple[str, torch.dtype]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "fp16" if device.startswith("cuda") else "fp32"
    if precision not in DTYPES:
        raise ConfigError(f"Unknown precision '{precision}'", "Use auto, fp32, fp16 or bf16")
    return device, DTYPES[precision]


class _Counted:
    """The pipeline, with one progress event per image it draws (run_batch has no per-image hook); every
    other attribute is the pipeline's own, read and set."""

    def __init__(self, pipe, progress: StageProgress):
        object.__setattr__(self, "_pipe", pipe)
        object.__setattr__(self, "_progress", progress)

    def __call__(self, *args, **kwargs):
        out = self._pipe(*args, **kwargs)
        self._progress.advance()
        return out

    def __getattr__(self, name: str):
        return getattr(self._pipe, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self._pipe, name, value)
