"""`sample` section: images generated during training, to watch the LoRA learn."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class SampleConfig(Section):
    sample_prompts: list[str] = Field(
        default_factory=list,
        description="Prompts rendered with the LoRA being trained into output_dir/samples/ (and TensorBoard, "
        "and the grid in report.html). Plain text; the trained LoRA is applied at weight 1.",
    )
    sample_every_n_steps: int = Field(
        0, ge=0, description="Render the sample prompts every N steps (0: off)."
    )
    sample_every_n_epochs: int = Field(
        0, ge=0, description="Render the sample prompts every N epochs (0: off)."
    )
    sample_negative_prompt: str = Field("", description="Negative prompt for the samples.")
    sample_steps: int = Field(20, ge=1, le=150, description="Denoising steps per sample image.")
    sample_sampler: str = Field("Euler a", description="Sampler: Euler a, Euler, DPM++ 2M, DDIM, ...")
    sample_cfg_scale: float = Field(7.0, ge=0.0, le=30.0, description="CFG scale of the samples.")
    sample_seed: int = Field(1, description="Seed of the first sample prompt (the next ones count up).")
    sample_size: int | None = Field(
        None, ge=64, le=2048, multiple_of=8, description="Sample width and height. Empty: the resolution."
    )
