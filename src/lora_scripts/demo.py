"""The built-in demo: demo base model + style images -> metadata.csv -> LoRA -> images, offline on CPU.

`make_sample_images` (neon sketches in several aspect ratios) stays for the tests' small datasets.
"""

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


STYLE_OBJECTS = ("phone", "laptop")  # trained on; tablets and watches in the style are held out
HELD_OUT_OBJECTS = ("tablet", "watch")
COMPARE_PROMPTS = [  # none of them is a training caption
    "neon style, a tablet on dark metal",
    "neon style, a watch on dark metal",
    "a red phone on a white background",
    "a yellow laptop on a grey background",
]
COMPARE_WEIGHTS = (0.0, 0.5, 1.0)
GUIDANCE = 4.0  # the demo base is small: above ~5 its colours over-saturate


def write_style_images(folder: Path, objects: tuple[str, ...], per_object: int, seed: int) -> Path:
    """The demo's style (neon magenta/cyan on dark metal, drawn by data/synthetic) with a metadata.csv."""
    from .data.synthetic import style_dataset

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (image, caption) in enumerate(style_dataset(objects, per_object, seed)):
        name = f"{i:03d}_{caption.split(' a ')[1].split()[0]}.png"
        image.save(folder / name)
        rows.append((name, caption))
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "prompt"])
        writer.writerows(rows)
    return folder / "metadata.csv"


def demo_config(out: Path, base_model: Path, steps: int) -> dict:
    return {
        "base_model": str(base_model),
        "train_data_dir": str(out / "images"),
        "output_dir": str(out / "lora"),
        "output_name": "tech_style_demo",
        "resolution": 64,
        "min_bucket_reso": 64,
        "max_bucket_reso": 64,
        "bucket_reso_steps": 64,
        "trigger_word": "neon style",
        "validation_dir": str(out / "held_out"),
        "validation_steps": max(1, steps // 6),
        "lora_rank": 8,
        "lora_alpha": 8,
        "batch_size": 4,
        "max_train_steps": steps,
        "learning_rate": 1e-3,
        "train_text_encoder": True,  # "neon", "style", "metal": words the base never learnt
        "save_steps": max(1, steps // 2),
        "device": "cpu",
        "overwrite": True,
        "sample_prompts": COMPARE_PROMPTS[:2],
        "sample_every_n_steps": max(1, steps // 3),
        "sample_steps": 20,
    }


def run_demo(out: Path, steps: int) -> dict[str, Path]:
    from .config import build_config
    from .models.demo_base import demo_base_files
    from .train.run import run_training

    started = time.time()
    console.rule("1/4 The demo base model (assets/demo-base: SD1.5 layout, 64 px, draws plain devices)")
    base = demo_base_files()
    console.print(
        f"single file:      {base['single_file']}\ndiffusers folder: {base['diffusers']}", markup=False
    )
    console.rule("2/4 Style images the base cannot draw: neon edges on dark metal (metadata.csv)")
    csv_path = write_style_images(out / "images", STYLE_OBJECTS, 8, seed=0)
    write_style_images(out / "held_out", HELD_OUT_OBJECTS, 4, seed=1)
    console.print(
        f"{csv_path} (phones, laptops); held out for validation: {out / 'held_out'} (tablets, watches)",
        markup=False,
    )
    console.rule("3/4 Training the LoRA from the single-file checkpoint")
    raw = demo_config(out, base["single_file"], steps)
    (out / "demo_config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = run_training(build_config(raw, source=str(out / "demo_config.yaml")))
    console.rule("4/4 Base | LoRA 0.5 | LoRA 1.0 on prompts it was not trained on (diffusers' own loader)")
    grid = generate_comparison(base["diffusers"], result.lora_path, out / "samples")
    console.print(f"[bold green]Demo finished in {time.time() - started:.0f} s[/]")
    report = result.lora_path.parent / "report.html"
    console.print(
        f"LoRA:    {result.lora_path}\nRun log: {result.lora_path.parent / 'train.log'}", markup=False
    )
    console.print(
        f"Report:  {report}  (loss curves, samples per checkpoint, config)\nImages:  {grid}", markup=False
    )
    return {"lora": result.lora_path, "grid": grid, **base}


def compare_images(
    diffusers_dir: Path, lora: Path, prompts: list[str], weights: tuple[float, ...], seed: int = 0
) -> list[list[Image.Image]]:
    """One row per prompt, one image per LoRA weight, same seed, through diffusers' own LoRA loader."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        diffusers_dir, local_files_only=True, torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="demo")
    rows = []
    for prompt in prompts:
        row = []
        for weight in weights:
            pipe.set_adapters(["demo"], adapter_weights=[weight])
            generator = torch.Generator("cpu").manual_seed(seed)
            row.append(
                pipe(prompt, num_inference_steps=20, height=64, width=64, generator=generator).images[0]
            )
        rows.append(row)
    return rows


def generate_comparison(diffusers_dir: Path, lora: Path, folder: Path) -> Path:
    """base | LoRA 0.5 | LoRA 1.0 for each prompt, as PNGs and one labelled grid."""
    from .save.grid import make_grid

    rows = compare_images(diffusers_dir, lora, COMPARE_PROMPTS, COMPARE_WEIGHTS)
    folder.mkdir(parents=True, exist_ok=True)
    for r, row in enumerate(rows):
        for weight, image in zip(COMPARE_WEIGHTS, row, strict=True):
            image.save(folder / f"prompt{r}_lora{weight:.1f}.png")
    big = [image.resize((128, 128), Image.NEAREST) for row in rows for image in row]
    labels = ["base" if w == 0 else f"LoRA {w:g}" for w in COMPARE_WEIGHTS]
    make_grid(big, COMPARE_PROMPTS, labels).save(folder / "base_vs_lora.png")
    return folder / "base_vs_lora.png"
