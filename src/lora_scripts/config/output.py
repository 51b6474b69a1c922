"""`output` section: where and how the LoRA is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .base import Section


class OutputConfig(Section):
    output_dir: Path = Field(
        Path("output"),
        description="Folder for the LoRA files, samples, report and the run log: one folder per LoRA "
        "(e.g. `output/tech_phone`); a folder that holds another LoRA's run is refused.",
    )
    output_name: str | None = Field(
        None,
        pattern=r"^[^/\\:*?\"<>|]+$",
        description="File name of the LoRA without extension; it is the name in `<lora:NAME:0.7>`. "
        "Empty means the output folder's name.",
    )
    save_steps: int = Field(
        0, ge=0, description="Also save `NAME-stepNNNNNN.safetensors` every N steps (0: off)."
    )
    save_every_n_epochs: int = Field(
        0, ge=0, description="Also save `NAME-epochNNNN.safetensors` every N epochs."
    )
    save_precision: Literal["fp16", "bf16", "float"] = Field(
        "fp16", description="Precision of the saved LoRA weights. fp16 is what WebUI/ComfyUI users expect."
    )
    save_state: bool = Field(
        True,
        description="With save_steps, also save the full training state (optimiser, RNG, data position) so "
        "`resume: auto` can continue exactly after a crash or Ctrl-C.",
    )
    keep_last_n: int = Field(2, ge=1, description="Training states to keep (older ones are deleted).")
    overwrite: bool = Field(
        False, description="Allow replacing an existing final LoRA file of the same name in output_dir."
    )
    training_comment: str | None = Field(
        None,
        description="A note stored in the LoRA file's metadata as `ss_training_comment` (kohya's key: "
        "A1111 and ComfyUI show it; `lora-scripts lora inspect` lists it as comment), e.g. a trigger word "
        "or the licence. Empty: none written.",
    )

    def name(self) -> str:
        return self.output_name or self.output_dir.resolve().name or "lora"
