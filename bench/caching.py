"""Seconds per step with latents + text-encoder outputs cached vs not (trainer), bare loop for reference.

python -m bench.caching          # SD1.5-size model, 128 px from 3000x2000 JPEGs
python -m bench.caching --tiny   # the tiny model

Timed with the same optimiser-step hook as bench.speed (bench/clock.py). The cache fill happens before the
first step, so it shows in "start -> end of step 1" (model loading + caches + step 1), not in the step times.
"""

from __future__ import annotations

import argparse

from .common import PHOTO, base_spec, median, photo_size, run_child, save_results, table
from .speed import spread

MODES = {
    "no cache": {"side": "trainer", "cache_latents": "no", "cache_te": False},
    "latents + TE cached": {"side": "trainer", "cache_latents": "memory", "cache_te": True},
    "bare loop": {"side": "bare"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images", type=int, default=4, help="images per epoch (batch 1: steps per epoch)")
    ap.add_argument("--rounds", type=int, default=2, help="the mode order reverses each round")
    ap.add_argument("--photo", type=photo_size, default=PHOTO)
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--no-report", action="store_true", help="save the results only (python -m bench.report)")
    args = ap.parse_args()
    base = base_spec(args, args.tiny)
    total = args.epochs * args.images
    runs = []
    for i in range(args.rounds):
        order = list(MODES) if i % 2 == 0 else list(reversed(MODES))
        for mode in order:
            r = run_child({**base, **MODES[mode], "warmup": 1, "steps": total - 1})
            run = {
                "mode": mode,
                "round": i,
                "step_seconds": r["step_seconds"],
                "step_cpu_seconds": r["step_cpu_seconds"],
                "timed": spread(r["step_seconds"]),
                "startup_seconds": r["startup_seconds"],
                "train_peak_mb": r["train_peak_mb"],
            }
            print(
                f"  round {i + 1} {mode:20s}: {run['timed']['median']:.3f} s/step "
                f"(CPU {median(r['step_cpu_seconds']):.3f}), "
                f"start -> step 1 end {run['startup_seconds']:.1f} s",
                flush=True,
            )
            runs.append(run)
    summary = summarise(runs, args.images)
    payload = {"args": vars(args) | {"resolution": base["resolution"]}, "runs": runs, "summary": summary}
    path = save_results("caching", args.tiny, payload)
    print()
    print(caching_table(summary))
    print(f"\nResults: {path}")
    if not args.no_report:
        from .report import write_report

        print(f"Report: {write_report()}")


def summarise(runs: list[dict], images: int) -> dict:
    out: dict = {"images_per_epoch": images}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {
            "steps": spread([s for r in mine for s in r["step_seconds"]]),
            "cpu_steps": spread([s for r in mine for s in r["step_cpu_seconds"]]),
            "run_medians": [r["timed"]["median"] for r in mine],
            "startup": median([r["startup_seconds"] for r in mine]),
            "train_peak_mb": median([r["train_peak_mb"] for r in mine]),
        }
    step = {m: out[m]["steps"]["median"] for m in MODES}
    out["speedup_vs_no_cache"] = step["no cache"] / step["latents + TE cached"]
    out["speedup_vs_bare"] = step["bare loop"] / step["latents + TE cached"]
    cpu = {m: out[m]["cpu_steps"]["median"] for m in MODES}
    out["cpu_speedup_vs_no_cache"] = cpu["no cache"] / cpu["latents + TE cached"]
    out["cpu_speedup_vs_bare"] = cpu["bare loop"] / cpu["latents + TE cached"]
    return out


def _iqr(x: dict) -> str:
    return f"{x['median']:.3f} ({x['q1']:.3f}-{x['q3']:.3f})"


def caching_table(s: dict) -> str:
    n = s["images_per_epoch"]
    rows = [
        [
            m,
            _iqr(s[m]["steps"]),
            _iqr(s[m]["cpu_steps"]),
            f"{s[m]['steps']['median'] * n:.2f}",
            f"{s[m]['startup']:.1f}",
            f"{s[m]['train_peak_mb']:.0f}",
        ]
        for m in MODES
    ]
    return (
        table(
            [
                "run",
                "wall s/step, median (IQR)",
                "CPU s/step, median (IQR)",
                f"epoch of {n} steps, s",
                "start -> end of step 1, s",
                "peak MB (timed steps)",
            ],
            rows,
        )
        + f"\n\nSpeed-up per step (so per epoch from epoch 2 on), wall time: {s['speedup_vs_no_cache']:.2f}x "
        f"vs the trainer without caches, {s['speedup_vs_bare']:.2f}x vs the bare loop; CPU time: "
        f"{s['cpu_speedup_vs_no_cache']:.2f}x and {s['cpu_speedup_vs_bare']:.2f}x."
    )


if __name__ == "__main__":
    main()
