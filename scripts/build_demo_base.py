"""Build assets/demo-base/: the small SD1.5-layout model that draws, trained on CPU from images made in code.

    .venv/bin/python scripts/build_demo_base.py            # the committed build (seed 0)
    .venv/bin/python scripts/build_demo_base.py --out /tmp/demo-base --unet-steps 300   # a quick look

Steps: synthetic dataset -> VAE -> UNet + text encoder -> demo-base.safetensors (LDM single file) and
diffusers/ (save_pretrained) -> samples.png (prompts x seeds). Deterministic for a seed and thread count.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lora_scripts.models.demo_base import BuildSettings, build, save_single_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "a red phone on a white background",
    "a blue laptop on a dark background",
    "a green tablet on a grey background",
    "a yellow watch on a dark background",
    "a black phone on a grey background",
    "a white laptop on a grey background",
]
SEEDS = (0, 1, 2, 3)


def sample_grid(pipe, path: Path, steps: int = 20, cfg: float = 4.0) -> None:
    """One row per prompt, one column per seed, each image shown at 2x. CFG 4: this small model
    over-saturates at SD's usual 7.5."""
    pipe.set_progress_bar_config(disable=True)
    grid = Image.new("RGB", (128 * len(SEEDS), 128 * len(PROMPTS)), (255, 255, 255))
    for row, prompt in enumerate(PROMPTS):
        for col, seed in enumerate(SEEDS):
            image = pipe(
                prompt,
                num_inference_steps=steps,
                guidance_scale=cfg,
                height=64,
                width=64,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
            grid.paste(image.resize((128, 128), Image.NEAREST), (128 * col, 128 * row))
    grid.save(path)


def main() -> None:
    defaults = BuildSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "demo-base")
    parser.add_argument(
        "--vae-file", type=Path, help="reuse (or keep) the trained VAE here, e.g. to retrain the UNet"
    )
    for field in dataclasses.fields(BuildSettings):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(
            flag, type=type(getattr(defaults, field.name)), default=getattr(defaults, field.name)
        )
    args = parser.parse_args()
    settings = BuildSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BuildSettings)})
    started = time.time()

    def say(message: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    say(f"Building the demo base: {settings}")
    pipe = build(settings, say, args.vae_file)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_single_file(pipe, out / "demo-base.safetensors")
    folder = out / "diffusers"
    if folder.exists():
        shutil.rmtree(folder)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    # transformers reads the text encoder's saved dtype back ("auto"): ask for float32, as the others load
    te_config = folder / "text_encoder" / "config.json"
    te_config.write_text(te_config.read_text().replace('"float16"', '"float32"'))
    say(f"Saved {out / 'demo-base.safetensors'} and {folder}")
    sample_grid(pipe, out / "samples.png")
    say(f"Samples: {out / 'samples.png'} ({len(PROMPTS)} prompts x seeds {SEEDS}); done")


if __name__ == "__main__":
    main()
