"""The SDXL row: seconds/step and peak memory of the trainer vs a bare diffusers + peft SDXL loop
(bench/sdxl_bare.py, the shape of diffusers' train_text_to_image_lora_sdxl.py) at equal settings, with the
bare-vs-bare A/A control. bench/speed.py's method and code: every run its own process (bench/worker.py),
one optimiser-step clock (bench/clock.py), the A/B + A/A order alternating between rounds.

python -m bench.sdxl_speed --tiny    # CPU: the tiny SDXL (models/tiny_sdxl.py), 64 px, fp32
python -m bench.sdxl_speed           # GPU: SDXL's real architecture, random weights, 1024 px, bf16

Equal settings on both sides: the same diffusers folder, LoRA rank 16 / alpha 8 on kohya's UNet targets (the
UNet only, as configs/sdxl_8gb.yaml), batch 1, gradient checkpointing, bf16 on a GPU (fp32 on a CPU) with
the VAE in float32, AdamW (lr 1e-4, wd 1e-2), grad-norm clip 1.0, no caches (the example encodes the photo
and the prompt every step): the photo decoded and resized every step on both sides.
"""

from __future__ import annotations

import argparse
import time

from .common import PHOTO, photo_size, photos, save_results, table
from .speed import ROUND_ORDER, rounds, speed_table, summarise


def base_spec(args) -> dict:
    import torch

    from .sdxl_model import sdxl_folder

    gpu = torch.cuda.is_available()
    if not gpu and not args.tiny:
        raise SystemExit("the real-size SDXL needs a GPU; on a CPU use --tiny")
    return {
        "route": "sdxl",
        "model": str(sdxl_folder(args.tiny)),
        "data": str(photos(args.images, args.photo)),
        "photo": list(args.photo),
        "resolution": args.resolution or (1024 if gpu else 64),
        "rank": 16,
        "alpha": 8,
        "batch_size": 1,
        "seed": 0,
        "lr": 1e-4,
        "device": "cuda" if gpu else "cpu",
        "mixed_precision": args.precision or ("bf16" if gpu else "no"),
        "gradient_checkpointing": True,
        "doctor": "off",  # the dataset check runs before training: not part of a step, and costs start-up
        "warmup": args.warmup,
        "steps": args.steps,
    }


def stamp(*parts, **kwargs) -> None:
    print(time.strftime("%H:%M:%S"), *parts, **kwargs)


def gpu_table(s: dict) -> str:
    """Timed-steps GPU memory per arm (torch.cuda.max_memory_allocated / max_memory_reserved)."""
    rows = [
        [
            arm,
            f"{s[arm]['gpu_peak_allocated_mb']:.0f}",
            f"{s[arm]['gpu_peak_reserved_mb']:.0f}",
            f"{s[arm]['gpu_peak_before_timed_mb']:.0f}",
        ]
        for arm in ("trainer", "bare", "bare again")
        if "gpu_peak_allocated_mb" in s[arm]
    ]
    if not rows:
        return ""
    head = ["arm", "timed steps: max allocated MB", "max reserved MB", "loading + warm-up: max allocated MB"]
    ab, aa = s["A/B gpu memory"], s["A/A gpu memory"]
    return (
        table(head, rows)
        + f"\n\nGPU peak allocated, trainer − bare: {ab['median']:+.0f} MB (rounds {ab['min']:+.0f} to "
        f"{ab['max']:+.0f}); bare again − bare: {aa['median']:+.0f} MB."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the tiny SDXL on the CPU")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of A/B + A/A pairs (order alternates)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed optimiser steps at the start of each run")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per run")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--photo", type=photo_size, default=PHOTO, help="JPEG size WxH (default 3000x2000)")
    ap.add_argument("--resolution", type=int, default=None, help="default: 1024 on a GPU, 64 with --tiny")
    ap.add_argument(
        "--precision",
        choices=["no", "fp16", "bf16"],
        default=None,
        help="default: bf16 on a GPU, no (fp32) on a CPU; --tiny --precision bf16 checks the GPU's code path",
    )
    ap.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no further round once this many seconds have passed plus one round's time",
    )
    args = ap.parse_args()
    started = time.time()
    base = base_spec(args)
    stamp(
        f"SDXL {'tiny' if args.tiny else 'real-size'}, {base['resolution']} px from "
        f"{args.photo[0]}x{args.photo[1]} JPEGs, rank 16/alpha 8, batch 1, {base['mixed_precision']}, "
        f"gradient checkpointing, up to {args.rounds} rounds of A/B + A/A, {args.warmup} warm-up + "
        f"{args.steps} timed steps per run",
        flush=True,
    )
    runs: list[dict] = []

    def save(done: list[dict]):
        """Everything so far; the summary over whole rounds only (a round is 4 runs)."""
        whole = [r for r in done if sum(x["round"] == r["round"] for x in done) == len(ROUND_ORDER[0])]
        summary = summarise(whole) if whole else None
        rounds_done = len({r["round"] for r in whole})
        payload = {
            "args": vars(args),
            "base": base,
            "rounds_done": rounds_done,
            "runs": done,
            "summary": summary,
        }
        return save_results("sdxl_speed", args.tiny, payload), summary

    for i in range(args.rounds):
        round_started = time.time()
        before = list(runs)
        runs += rounds(base, 1, log=stamp, first=i, on_run=lambda new, before=before: save(before + new))
        path, summary = save(runs)
        took = time.time() - round_started
        if args.budget_s and i + 1 < args.rounds and time.time() - started + took > args.budget_s:
            stamp(f"stopping after {i + 1} round(s): another would pass the {args.budget_s:.0f} s budget")
            break
    print()
    print(speed_table(summary))
    if gpu_table(summary):
        print()
        print(gpu_table(summary))
    print(f"\nResults: {path}")


if __name__ == "__main__":
    main()
