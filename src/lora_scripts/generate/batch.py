"""A batch: prompts x LoRA weights x seeds -> every image saved, plus one labelled X/Y grid."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from ..errors import ConfigError
from ..save.grid import make_grid
from ..save.png import save_png
from .images import generate_images, next_index, parameters_text
from .prompts import PromptSpec
from .stack import LoraStack


@dataclass
class Batch:
    """Specs in grid order (row-major) with the grid's labels."""

    specs: list[PromptSpec]
    row_labels: list[str]
    col_labels: list[str]


def plan_batch(
    prompts: list[PromptSpec], seeds: list[int], weights: list[float] | None = None, lora: str | None = None
) -> Batch:
    """Without weights: rows = prompts, columns = seeds. With weights: rows = prompt x seed, columns = the
    weight of LoRA `lora` (added to each prompt), or of every tag in the prompt when `lora` is None."""
    if not weights:
        specs = [replace(p, seed=s) for p in prompts for s in seeds]
        return Batch(specs, [_short(p.text) for p in prompts], [f"seed {s}" for s in seeds])
    bare = next((p for p in prompts if not p.loras), None) if lora is None else None
    if bare is not None:  # its row would be the same image in every column
        raise ConfigError(
            f"--weights compares a LoRA's weights, but the prompt '{_short(bare.text)}' has no <lora:name:w> "
            "tag and no --lora is given",
            "Add a tag such as <lora:tech_phone:1> to the prompt, or name the LoRA with --lora tech_phone",
        )
    rows = [(p, s) for p in prompts for s in seeds]
    specs = [replace(p, seed=s).with_weight(lora, w) for p, s in rows for w in weights]
    row_labels = [_short(p.prompt) + (f"\nseed {s}" if len(seeds) > 1 else "") for p, s in rows]
    return Batch(specs, row_labels, [f"{lora or 'LoRA weight'}: {w:g}" for w in weights])


def run_batch(
    pipe,
    batch: Batch,
    loras: LoraStack | None,
    out: Path,
    model_name: str | None = None,
    grid: bool = True,
    vae_name: str | None = None,
) -> tuple[list[Path], Path | None]:
    """Generate and save every image as it is made (`00012-<seed>.png`), then the grid if asked."""
    out.mkdir(parents=True, exist_ok=True)
    start = next_index(out)
    paths: list[Path] = []

    def save(spec: PromptSpec, image: Image.Image) -> None:
        hashes = loras.hashes(tuple(r for r in spec.loras if r.weight != 0)) if loras else None
        path = out / f"{start + len(paths):05d}-{spec.seed}.png"
        paths.append(save_png(image, path, parameters_text(spec, model_name, hashes, vae_name)))

    images = generate_images(pipe, batch.specs, loras, on_image=save)
    if not grid or len(images) < 2:
        return paths, None
    picture = make_grid(images, batch.row_labels, batch.col_labels)
    grid_path = out / f"grid-{start:05d}.png"
    return paths, save_png(picture, grid_path, "\n".join(["X/Y grid", *batch.col_labels]))


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
