"""The 8 GB recipe measured: the trainer with configs/sdxl_8gb.yaml's settings (UNet only, text-encoder
outputs and latents cached, gradient checkpointing, bf16, 8-bit AdamW, or Adafactor where bitsandbytes
cannot run) on SDXL's real architecture at 1024x1024 batch 1: GPU memory of the training steps after the
caches are filled, seconds per step, next to bench/sdxl_memory.py's estimate.

python -m bench.sdxl_8gb           # GPU: real-size SDXL (bench/sdxl_model.py), 1024 px
python -m bench.sdxl_8gb --tiny    # CPU: the tiny SDXL at 64 px (the harness only: no GPU memory figures)

One run in its own process (bench/worker.py, the trainer side of bench/speed.py with `config_file`): the
file's settings, with the model, photos, output folder and step count replaced, samples and checkpoint
states off, and the bucket fixed at 1024x1024 (enable_bucket: false) so the size is the one the 8 GB bar
names. The clock (bench/clock.py) resets the GPU peaks at the end of the warm-up steps, so "timed steps"
covers training only; "before" covers loading, the caches and the warm-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from .common import PHOTO, ROOT, photo_size, photos, run_child, save_results, table
from .speed import spread

CONFIG = ROOT / "configs" / "sdxl_8gb.yaml"
GIB = 1024**3
PROBE = """
import torch, bitsandbytes as bnb
p = torch.nn.Parameter(torch.ones(1 << 16, device="{device}"))  # 8-bit state from 4096 up
opt = bnb.optim.AdamW8bit([p], lr=1e-3)
p.grad = torch.ones_like(p)
opt.step()
assert torch.isfinite(p).all()
"""


def bitsandbytes_works(device: str) -> tuple[bool, str]:
    """One AdamW8bit step in a separate process (no CUDA context left in this one)."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(device=device)], capture_output=True, text=True)
    return done.returncode == 0, (done.stderr.strip().splitlines() or [""])[-1][:300]


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--warmup", type=int, default=2, help="untimed optimiser steps (after the caches)")
    ap.add_argument("--steps", type=int, default=4, help="timed optimiser steps")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--photo", type=photo_size, default=PHOTO)
    ap.add_argument("--resolution", type=int, default=None, help="default: 1024 on a GPU, 64 with --tiny")
    ap.add_argument(
        "--optimizer",
        choices=["auto", "adamw8bit", "adafactor"],
        default="auto",
        help="auto: the config's adamw8bit where bitsandbytes runs, else adafactor",
    )
    args = ap.parse_args()
    from .sdxl_model import sdxl_folder

    gpu = torch.cuda.is_available()
    if not gpu and not args.tiny:
        raise SystemExit("the real-size SDXL needs a GPU; on a CPU use --tiny")
    device = "cuda" if gpu else "cpu"
    resolution = args.resolution or (1024 if gpu else 64)
    optimizer, why = args.optimizer, "asked for"
    if optimizer == "auto":
        works, error = bitsandbytes_works(device)
        optimizer = "adamw8bit" if works else "adafactor"
        why = "bitsandbytes runs here" if works else f"bitsandbytes cannot run here ({error})"
    print(time.strftime("%H:%M:%S"), f"optimizer {optimizer}: {why}", flush=True)
    import yaml

    file = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    overrides = {"optimizer": optimizer, "enable_bucket": False, "resolution": resolution}
    spec = {
        "route": "sdxl",
        "side": "trainer",
        "config_file": str(CONFIG),
        "config_overrides": overrides,
        "model": str(sdxl_folder(args.tiny)),
        "data": str(photos(args.images, args.photo)),
        "resolution": resolution,
        "rank": file["lora_rank"],
        "batch_size": 1,
        "lr": file["learning_rate"],
        "seed": 0,
        "device": device,
        "doctor": "off",
        "warmup": args.warmup,
        "steps": args.steps,
    }
    started = time.time()
    print(time.strftime("%H:%M:%S"), f"training {args.warmup} + {args.steps} optimiser steps ...", flush=True)
    r = run_child(spec)
    accumulation = file.get("gradient_accumulation_steps", 1)
    measured = {
        "optimizer": optimizer,
        "optimizer_reason": why,
        "resolution": resolution,
        "gradient_accumulation_steps": accumulation,
        "settings": {k: v for k, v in file.items() if k not in ("sample_prompts",)} | overrides,
        "step_seconds": r["step_seconds"],
        "s_per_step": spread(r["step_seconds"]),
        "s_per_image": spread([s / accumulation for s in r["step_seconds"]]),
        "startup_seconds": r["startup_seconds"],
        "trainable_params": r["trainable_params"],
        "losses": r["losses"],
        "train_peak_rss_mb": r["train_peak_mb"],
        "process_peak_rss_mb": r["process_peak_mb"],
        "wall_seconds": time.time() - started,
        **{k: v for k, v in r.items() if k.startswith("gpu_")},
    }
    from .sdxl_memory import estimate

    payload = {"measured": measured, "estimate": estimate(file["lora_rank"]), "tiny": args.tiny}
    path = save_results("sdxl_8gb", args.tiny, payload)
    print(summary_table(payload))
    print(f"\nResults: {path}")


def summary_table(p: dict) -> str:
    m, e = p["measured"], p["estimate"]
    rows = [
        [
            "s per optimiser step (median)",
            f"{m['s_per_step']['median']:.3f}",
            f"{m['gradient_accumulation_steps']} images per step (gradient_accumulation_steps)",
        ],
        ["s per image (median)", f"{m['s_per_image']['median']:.3f}", ""],
    ]
    for key, label in (
        ("gpu_peak_allocated_mb", "timed steps: torch.cuda.max_memory_allocated"),
        ("gpu_peak_reserved_mb", "timed steps: torch.cuda.max_memory_reserved"),
        ("gpu_device_used_mb", "device memory in use at the end (+ CUDA context)"),
        ("gpu_peak_before_timed_mb", "loading + caches + warm-up: max_memory_allocated"),
        ("gpu_reserved_before_timed_mb", "loading + caches + warm-up: max_memory_reserved"),
    ):
        if key in m:
            rows.append([label, f"{m[key] / 1024:.2f} GiB", ""])
    if "gpu_peak_allocated_mb" not in m:
        rows.append(
            ["timed steps: peak RSS (CPU run, no GPU figures)", f"{m['train_peak_rss_mb']:.0f} MB", ""]
        )
    measured = table(["SDXL 8 GB recipe, measured", "value", "note"], rows)
    estimated = table(
        ["estimate (bench/sdxl_memory.py)", "GiB"], [[k, f"{v:.2f}"] for k, v in e["gib"].items()]
    )
    return (
        f"Optimizer {m['optimizer']} ({m['optimizer_reason']}), {m['resolution']} px, batch 1, "
        f"LoRA {m['trainable_params']:,} parameters\n\n{measured}\n\n{estimated}\n\n"
        f"Estimate, weights + optimizer state of the recipe: {e['recipe_8gb_gib']:.2f} GiB" + verdict(m)
    )


def verdict(m: dict) -> str:
    """Against an 8 GiB card: the allocator's peak reserve plus this process's CUDA context (device memory in
    use at the end, less what the allocator held then; read on this GPU: other GPUs' contexts differ)."""
    if "gpu_peak_reserved_mb" not in m:
        return ""
    reserved_then = m.get("gpu_reserved_end_mb", m["gpu_peak_reserved_mb"])
    context = max(0.0, m["gpu_device_used_mb"] - reserved_then) / 1024
    steps = m["gpu_peak_reserved_mb"] / 1024 + context
    before = m["gpu_reserved_before_timed_mb"] / 1024 + context
    word = {True: "fits", False: "does NOT fit"}
    return (
        f"\n\nAgainst an 8 GiB card: the training steps need {steps:.2f} GiB (reserved "
        f"{steps - context:.2f} + about {context:.2f} of CUDA context and the rest outside the allocator): "
        f"**{word[steps <= 8]}**; "
        f"loading + caches + warm-up peak at {before:.2f} GiB: **{word[before <= 8]}**."
    )


if __name__ == "__main__":
    main()
