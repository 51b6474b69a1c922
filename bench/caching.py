"""Per-epoch time with latents + text-encoder outputs cached vs not (trainer), bare loop for reference.

python -m bench.caching          # SD1.5-size model (slow on CPU: minutes per epoch)
python -m bench.caching --tiny   # the tiny model
"""

from __future__ import annotations

import argparse

from .common import base_spec, median, run_child, save_results, table

MODES = {
    "no cache": {"side": "trainer", "cache_latents": "no", "cache_te": False},
    "latents + TE cached": {"side": "trainer", "cache_latents": "memory", "cache_te": True},
    "bare loop": {"side": "bare"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--images", type=int, default=8, help="images per epoch (batch 1: steps per epoch)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=None)
    args = ap.parse_args()
    base = base_spec(args, args.tiny)
    runs = []
    for i in range(args.rounds):
        for mode, extra in MODES.items():
            spec = {**base, **extra}
            if extra["side"] == "bare":
                spec["steps"] = args.epochs * args.images
            else:
                spec["epochs"] = args.epochs
            r = run_child(spec)
            epochs = r.get("epoch_seconds") or [
                sum(r["step_seconds"][e * args.images : (e + 1) * args.images]) for e in range(args.epochs)
            ]
            run = {
                "mode": mode,
                "round": i,
                "epoch_seconds": epochs,
                "cache_fill_seconds": r.get("cache_fill_seconds", {}),
                "train_peak_mb": r["train_peak_mb"],
            }
            print(f"  round {i + 1} {mode:20s} epochs: {', '.join(f'{s:.2f}' for s in epochs)} s")
            runs.append(run)
    summary = summarise(runs)
    payload = {"args": vars(args) | {"resolution": base["resolution"]}, "runs": runs, "summary": summary}
    path = save_results("caching", args.tiny, payload)
    print()
    print(caching_table(summary))
    print(f"\nResults: {path}")
    from .report import write_report

    print(f"Report: {write_report(args.tiny)}")


def summarise(runs: list[dict]) -> dict:
    out = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        fills = [sum(r["cache_fill_seconds"].values()) for r in mine]
        out[mode] = {
            "first_epoch": median([r["epoch_seconds"][0] for r in mine]),
            "later_epochs": median([s for r in mine for s in r["epoch_seconds"][1:]]),
            "cache_fill": median(fills),
            "train_peak_mb": median([r["train_peak_mb"] for r in mine]),
        }
    later = {m: v["later_epochs"] for m, v in out.items()}
    out["speedup_vs_no_cache"] = later["no cache"] / later["latents + TE cached"]
    out["speedup_vs_bare"] = later["bare loop"] / later["latents + TE cached"]
    return out


def caching_table(s: dict) -> str:
    rows = [
        [
            m,
            f"{s[m]['cache_fill']:.2f}",
            f"{s[m]['first_epoch']:.2f}",
            f"{s[m]['later_epochs']:.2f}",
            f"{s[m]['train_peak_mb']:.0f}",
        ]
        for m in MODES
    ]
    return (
        table(["run", "cache fill s", "epoch 1 s", "epoch 2+ s (median)", "training peak MB"], rows)
        + f"\n\nSpeed-up from epoch 2 on: {s['speedup_vs_no_cache']:.2f}x vs the trainer without caches, "
        f"{s['speedup_vs_bare']:.2f}x vs the bare loop."
    )


if __name__ == "__main__":
    main()
