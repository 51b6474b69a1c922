"""The built-in demo: tiny model + sample images -> metadata.csv -> LoRA file -> images, offline on CPU."""

from __future__ import annotations

import csv
import logging
import random
import time
from pathlib import Path

import torch
import yaml
from PIL import Image, ImageDraw, ImageFilter

from .console import console

log = logging.getLogger(__name__)

COLOURS = [(0, 255, 240), (255, 0, 200), (120, 80, 255), (0, 255, 120)]
DEVICES = ["smartphone", "laptop", "tablet", "smartwatch"]


def make_sample_images(folder: Path, count: int = 12, seed: int = 0) -> Path:
    """Neon-on-metal device sketches in a few aspect ratios, with a metadata.csv (filename,prompt)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        w, h = rng.choice([(96, 96), (128, 96), (96, 128)])
        device, colour = DEVICES[i % len(DEVICES)], COLOURS[i % len(COLOURS)]
        img = Image.new("RGB", (w, h), (30 + i, 32 + i, 40 + i))
        draw = ImageDraw.Draw(img)
        for y in range(h):  # brushed-metal gradient
            draw.line([(0, y), (w, y)], fill=(40 + y // 4, 42 + y // 4, 50 + y // 4))
        box = (
            [w // 4, h // 6, 3 * w // 4, 5 * h // 6]
            if device != "laptop"
            else [w // 8, h // 3, 7 * w // 8, 3 * h // 4]
        )
        glow = Image.new("RGB", (w, h))
        ImageDraw.Draw(glow).rounded_rectangle(box, radius=6, outline=colour, width=4)
        img = Image.blend(img, glow.filter(ImageFilter.GaussianBlur(3)), 0.5)
        ImageDraw.Draw(img).rounded_rectangle(box, radius=6, outline=colour, width=1)
        name = f"{i:03d}_{device}.png"
        img.save(folder / name)
        rows.append((name, f"neon style, {device}, metal, minimal layout"))
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "prompt"])
        writer.writerows(rows)
    return folder / "metadata.csv"


def demo_config(out: Path, base_model: Path, steps: int) -> dict:
    return {
        "base_model": str(base_model),
        "train_data_dir": str(out / "images"),
        "metadata_path": str(out / "images" / "metadata.csv"),
        "output_dir": str(out / "lora"),
        "output_name": "tech_style_demo",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
        "lora_rank": 4,
        "lora_alpha": 4,
        "batch_size": 2,
        "max_train_steps": steps,
        "learning_rate": 1e-3,
        "save_steps": max(1, steps // 2),
        "device": "cpu",
        "overwrite": True,
        "sample_prompts": ["neon style, smartphone, metal", "neon style, laptop, minimal layout"],
        "sample_every_n_steps": max(1, steps // 3),
        "sample_steps": 8,
    }


def run_demo(out: Path, steps: int) -> dict[str, Path]:
    from .config import build_config
    from .models.tiny import save_tiny_model
    from .train.run import run_training

    started = time.time()
    console.rule("1/4 Building a tiny SD1.5-shaped model (random weights)")
    models = save_tiny_model(out / "models")
    console.print(f"diffusers folder: {models['diffusers']}\nsingle file:      {models['single_file']}")
    console.rule("2/4 Making sample images and labels (metadata.csv)")
    csv_path = make_sample_images(out / "images")
    console.print(f"{csv_path}")
    console.rule("3/4 Training the LoRA from the single-file checkpoint")
    raw = demo_config(out, models["single_file"], steps)
    (out / "demo_config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = run_training(build_config(raw, source=str(out / "demo_config.yaml")))
    console.rule("4/4 Generating with the LoRA through diffusers' own loader")
    grid = generate_comparison(models["diffusers"], result.lora_path, out / "samples")
    console.print(f"[bold green]Demo finished in {time.time() - started:.0f} s[/]")
    report = result.lora_path.parent / "report.html"
    console.print(f"LoRA:    {result.lora_path}\nRun log: {result.lora_path.parent / 'train.log'}")
    console.print(f"Report:  {report}  (loss curve, samples per checkpoint, config)\nImages:  {grid}")
    return {"lora": result.lora_path, "grid": grid, **models}


def generate_comparison(diffusers_dir: Path, lora: Path, folder: Path) -> Path:
    """Same prompt and seed without and with the LoRA, side by side in one PNG."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(diffusers_dir, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    prompt = "neon style, smartphone, metal"
    images = [_one(pipe, prompt)]
    pipe.load_lora_weights(str(lora), adapter_name="demo")
    images.append(_one(pipe, prompt))
    folder.mkdir(parents=True, exist_ok=True)
    grid = Image.new("RGB", (128 * len(images), 128))
    for i, img in enumerate(images):
        img.save(folder / ("base.png" if i == 0 else "with_lora.png"))
        grid.paste(img.resize((128, 128)), (128 * i, 0))
    grid.save(folder / "base_vs_lora.png")
    return folder / "base_vs_lora.png"


def _one(pipe, prompt: str) -> Image.Image:
    generator = torch.Generator("cpu").manual_seed(0)
    return pipe(prompt, num_inference_steps=8, height=64, width=64, generator=generator).images[0]
