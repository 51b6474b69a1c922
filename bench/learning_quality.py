"""Does the demo LoRA learn the style, not generic denoising? Measured with diffusers' own loader.

    .venv/bin/python -m bench.learning_quality                    # runs the demo, measures, prints JSON
    .venv/bin/python -m bench.learning_quality --run demo_run     # measures an existing demo folder

Three measurements on the shipped base (assets/demo-base/diffusers) and the demo's LoRA:
1. epsilon loss with fixed noise and fixed timesteps (the same for base and LoRA) on held-out images in the
   style (tablets and watches; the LoRA saw only phones and laptops) and on unrelated plain images: the LoRA
   should lower the first far more than the second;
2. the mean colour of images generated for prompts it was not trained on, at LoRA weight 0, 0.5 and 1.0,
   projected on the direction from the base's mean colour to the style's: how far it moves toward the style;
3. weight 0 against a pipeline that never loaded the LoRA: bit for bit.
This code is independent of the trainer's own validation (it uses only diffusers, torch and the images).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from bench.common import save_results, source_revision

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "assets" / "demo-base" / "diffusers"
TIMESTEPS = (50, 200, 350, 500, 650, 800, 950)
PROMPTS = [  # not training captions
    "neon style, a tablet on dark metal",
    "neon style, a watch on dark metal",
    "neon style, a phone",
    "a blue laptop on a white background",
]
SEEDS = (0, 1, 2)
GUIDANCE = 4.0  # the demo base is small: above ~5 it over-saturates (tests/models/test_demo_base.py)


def load(lora: Path | None) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(BASE, local_files_only=True, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name="style")
    return pipe


def pixels(images: list[Image.Image]) -> torch.Tensor:
    arrays = np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) for i in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) / 127.5 - 1


@torch.no_grad()
def eps_loss(pipe: StableDiffusionPipeline, images: list[Image.Image], captions: list[str]) -> float:
    """Mean epsilon MSE over images x TIMESTEPS, noise drawn from a fixed seed per image."""
    latents = pipe.vae.encode(pixels(images)).latent_dist.mean * pipe.vae.config.scaling_factor
    ids = pipe.tokenizer(captions, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    cond = pipe.text_encoder(ids.input_ids)[0]
    total = 0.0
    for i, t in enumerate(TIMESTEPS):
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1000 + i))
        steps = torch.full((len(latents),), t, dtype=torch.long)
        noisy = pipe.scheduler.add_noise(latents, noise, steps)
        pred = pipe.unet(noisy, steps, cond).sample
        total += torch.nn.functional.mse_loss(pred, noise).item()
    return total / len(TIMESTEPS)


@torch.no_grad()
def generate(pipe: StableDiffusionPipeline, weight: float | None) -> np.ndarray:
    """Every PROMPTS x SEEDS image (20 PNDM steps, CFG 4, 64 px) as one uint8 array. One pipeline call for
    all of them: a generator per image draws the same starting noise as one call per image, in a fraction of
    the time (the tiny UNet's time is per call, not per image)."""
    if weight is not None:
        pipe.set_adapters(["style"], adapter_weights=[weight])
    prompts = [prompt for prompt in PROMPTS for _ in SEEDS]
    generators = [torch.Generator("cpu").manual_seed(seed) for _ in PROMPTS for seed in SEEDS]
    images = pipe(
        prompts, num_inference_steps=20, guidance_scale=GUIDANCE, height=64, width=64, generator=generators
    ).images
    return np.stack([np.asarray(image) for image in images])


def measure(run: Path) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from lora_scripts.data.synthetic import plain_dataset, style_dataset

    lora = run / "lora" / "tech_style_demo.safetensors"
    held_style = style_dataset(("tablet", "watch"), 8, seed=11)  # unseen objects in the style
    plain_images, plain_captions = plain_dataset(seed=12, variants=1)
    base, tuned = load(None), load(lora)
    style_images, style_captions = zip(*held_style, strict=True)
    losses = {}
    for name, (images, captions) in {
        "style_held_out": (list(style_images), list(style_captions)),
        "unrelated": (plain_images, plain_captions),
    }.items():
        before, after = eps_loss(base, images, captions), eps_loss(tuned, images, captions)
        losses[name] = {"base": before, "lora": after, "change_pct": 100 * (after - before) / before}
    plain_gen = generate(base, None)
    weights = {w: generate(tuned, w) for w in (0.0, 0.5, 1.0)}
    style_mean = pixels(list(style_images)).mean((0, 2, 3)).numpy() * 127.5 + 127.5
    base_mean = plain_gen.reshape(-1, 3).mean(0)
    direction = (style_mean - base_mean) / np.linalg.norm(style_mean - base_mean)
    moved = {w: float((imgs.reshape(-1, 3).mean(0) - base_mean) @ direction) for w, imgs in weights.items()}
    return {
        "loss": losses,
        "style_specific_points": losses["unrelated"]["change_pct"] - losses["style_held_out"]["change_pct"],
        "colour_toward_style": {f"{w:g}": round(v, 1) for w, v in moved.items()},
        "weight0_bit_exact": bool(np.array_equal(weights[0.0], plain_gen)),
        "style_mean_rgb": [round(float(v), 1) for v in style_mean],
        "base_mean_rgb": [round(float(v), 1) for v in base_mean],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing demo output folder (default: run the demo)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/learning_quality_demo"))
    args = parser.parse_args()
    run, seconds = args.run, None
    if run is None:
        run = args.out
        started = time.time()
        cli = [sys.executable, "-m", "lora_scripts.cli", "demo", "--out", str(run)]
        subprocess.run(cli, check=True, cwd=ROOT)
        seconds = round(time.time() - started)
    result = {**measure(run), "demo_seconds": seconds, "revision": source_revision()}
    print(json.dumps(result, indent=2))
    print(f"saved {save_results('learning_quality', tiny=False, payload=result)}")


if __name__ == "__main__":
    main()
