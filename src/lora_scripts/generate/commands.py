"""CLI commands of `generate` (registered on the main app by cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ..console import console, guarded, setup_logging

EXAMPLES = """
Examples:\n
  lora-scripts generate -m v1-5-pruned.safetensors -l models/Lora "<lora:tech_phone:0.7> smartphone"\n
  lora-scripts generate -m base.safetensors -l models/Lora --prompts prompts.txt --lora tech_phone
  --weights 0,0.5,1 --seeds 1,2   (an X/Y grid: rows prompt x seed, columns LoRA weight)
"""


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `lora-scripts` app."""
    app.command(epilog=EXAMPLES)(generate)


def generate(
    prompts: list[str] = typer.Argument(None, help='Prompts in WebUI syntax: "<lora:name:0.7> text".'),
    model: str = typer.Option(
        ..., "--model", "-m", help="Base model: .safetensors file, diffusers folder, hub id."
    ),
    lora_dir: Path = typer.Option(
        None, "--lora-dir", "-l", help="Folder with LoRA files (like models/Lora)."
    ),
    prompts_file: Path = typer.Option(None, "--prompts", "-p", help="Prompts file: .txt, .csv or .yaml."),
    negative: str = typer.Option("", "--negative", "-n", help="Negative prompt."),
    steps: int = typer.Option(20, "--steps", help="Sampling steps."),
    cfg_scale: float = typer.Option(7.0, "--cfg", help="CFG scale (how closely to follow the prompt)."),
    width: int = typer.Option(512, "--width", "-W", help="Image width (multiple of 8)."),
    height: int = typer.Option(512, "--height", "-H", help="Image height (multiple of 8)."),
    sampler: str = typer.Option(
        "Euler a", "--sampler", help="Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, DDIM, UniPC."
    ),
    seed: int = typer.Option(-1, "--seed", help="First seed; -1 picks a random one."),
    count: int = typer.Option(1, "--count", help="Images per prompt (seeds seed, seed+1, ...)."),
    seeds: str = typer.Option(
        None, "--seeds", help="Exact seeds, comma-separated (replaces --seed/--count)."
    ),
    weights: str = typer.Option(
        None,
        "--weights",
        help="LoRA weights to compare, e.g. 0,0.5,1 (grid columns): of --lora, else of each prompt's tags.",
    ),
    sweep_lora: str = typer.Option(
        None, "--lora", help="The LoRA --weights applies to (default: every tag)."
    ),
    out: Path = typer.Option(Path("outputs"), "--out", "-o", help="Folder for the images and the grid."),
    grid: bool = typer.Option(True, "--grid/--no-grid", help="Also save an X/Y grid of a batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("auto", "--precision", help="auto (fp16 on GPU), fp32, fp16, bf16."),
    prediction_type: str = typer.Option("auto", "--prediction-type", help="auto, epsilon or v_prediction."),
    vae: str = typer.Option(
        None, "--vae", help="A VAE instead of the base model's: a WebUI VAE file or diffusers VAE folder."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
) -> None:
    """Make images from a base model and LoRAs, with WebUI prompts like "<lora:tech_phone:0.7> phone"."""
    setup_logging(debug)

    def action():
        from ..models.detect import check_vae, locate

        config = _model_config(model, prediction_type, vae)
        locate(config.base_model)  # a wrong -m path (or a .ckpt): a sentence before torch is imported
        if vae:  # so is a wrong --vae (generate has no allow_pickle)
            check_vae(vae, None, "Fix the --vae path, or leave it out")
        from .prompts import parse_prompt

        for text in prompts or []:  # so is a malformed <lora:...> tag
            parse_prompt(text)
        from .run import GenerateOptions, run_generate

        opts = GenerateOptions(
            model=config,
            prompts=list(prompts or []),
            prompts_file=prompts_file,
            lora_dir=lora_dir,
            settings={
                "negative_prompt": negative,
                "steps": steps,
                "cfg_scale": cfg_scale,
                "width": width,
                "height": height,
                "sampler": sampler,
            },
            seeds=_numbers(seeds, int, "--seeds") if seeds else _seed_range(seed, count),
            weights=_numbers(weights, float, "--weights") if weights else None,
            sweep_lora=sweep_lora,
            out=out,
            grid=grid,
            device=device,
            precision=precision,
        )
        images, grid_path = run_generate(opts)
        console.print(f"[bold green]{len(images)} image(s) saved[/] in {escape(str(out))}")
        if grid_path:
            console.print(f"Grid: {grid_path}", markup=False)

    guarded(action, debug)


def _model_config(base_model: str, prediction_type: str, vae: str | None = None):
    from pydantic import ValidationError

    from ..config import ModelConfig
    from ..errors import ConfigError

    try:
        return ModelConfig(base_model=base_model, prediction_type=prediction_type, vae=vae)
    except ValidationError as exc:
        raise ConfigError(
            f"--prediction-type '{prediction_type}' is not valid", "Use auto, epsilon or v_prediction"
        ) from exc


def _seed_range(seed: int, count: int) -> list[int]:
    import random

    from ..errors import ConfigError

    if count < 1:
        raise ConfigError(f"--count must be at least 1, not {count}", "Use --count 4 for four images")
    first = seed if seed >= 0 else random.randrange(2**31)
    return [first + i for i in range(count)]


def _numbers(text: str, kind: type, option: str) -> list:
    from ..errors import ConfigError

    what, example = ("whole numbers", "1,2,3") if kind is int else ("numbers", "0,0.5,1")  # seeds, weights
    try:
        values = [kind(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError as exc:
        raise ConfigError(
            f"{option} '{text}' is not a comma-separated list of {what}", f"Write it like {option} {example}"
        ) from exc
    if not values:
        raise ConfigError(f"{option} is empty", f"Write it like {option} {example}")
    return values
