"""Seconds/step and peak memory: trainer vs the bare diffusers + peft loop (A/B), with a bare-vs-bare A/A
control that shows the noise floor. Every run is its own process; the order alternates between rounds.

python -m bench.speed            # SD1.5-size model (random weights), 128 px on CPU / 512 px on a GPU
python -m bench.speed --tiny     # the tiny model, seconds per run (for developing the harness)
"""

from __future__ import annotations

import argparse
import statistics

from .common import PHOTO, base_spec, median, photo_size, run_child, save_results, table

# One round = an A/B pair (trainer, bare) and an A/A pair (bare, bare again). Even rounds run the A/B pair
# first, trainer before bare; odd rounds run the A/A pair first and the A/B pair bare before trainer. So each
# side runs first, and the A/A pair runs at each position, equally often over two rounds.
ROUND_ORDER = {
    0: [("A/B", "trainer"), ("A/B", "bare"), ("A/A", "bare"), ("A/A", "bare again")],
    1: [("A/A", "bare again"), ("A/A", "bare"), ("A/B", "bare"), ("A/B", "trainer")],
}
RATIOS = {"A/B": ("trainer", "bare"), "A/A": ("bare again", "bare")}


def spread(xs: list[float]) -> dict:
    """Median, quartiles, min and max."""
    xs = sorted(xs)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0] if xs else float("nan")
    return {"median": median(xs), "q1": q1, "q3": q3, "min": xs[0], "max": xs[-1], "n": len(xs)}


def one_run(spec: dict, pair: str, arm: str, round_: int) -> dict:
    r = run_child({**spec, "side": "trainer" if arm == "trainer" else "bare"})
    return {
        "round": round_,
        "pair": pair,
        "arm": arm,
        "side": r["spec"]["side"],
        "resolution": spec["resolution"],
        "timed": spread(r["step_seconds"]),
        "timed_cpu": spread(r["step_cpu_seconds"]),
        "cpu_share": sum(r["step_cpu_seconds"]) / sum(r["step_seconds"]),  # of one core
        "step_seconds": r["step_seconds"],
        "step_cpu_seconds": r["step_cpu_seconds"],
        "cpu_split_per_step": r["cpu_split_per_step"],
        "warmup_seconds": r["warmup_seconds"],
        "startup_seconds": r["startup_seconds"],
        "train_peak_mb": r["train_peak_mb"],
        "train_delta_mb": r["train_peak_mb"] - r["rss_before_train_mb"],
        "process_peak_mb": r["process_peak_mb"],
        "trainable_params": r["trainable_params"],
        "wall_seconds": r["wall_seconds"],
        **{k: v for k, v in r.items() if k.startswith("gpu_")},  # on a GPU (bench/clock.py)
    }


def rounds(base: dict, count: int, log=print, first: int = 0, on_run=None) -> list[dict]:
    """Rounds first .. first + count - 1 (their number fixes their order, ROUND_ORDER); `on_run(runs)` after
    each run (to save what there is when a time limit may stop the rest)."""
    runs = []
    for i in range(first, first + count):
        for pair, arm in ROUND_ORDER[i % 2]:
            run = one_run(base, pair, arm, i)
            t = run["timed"]
            log(
                f"  round {i + 1} {pair} {arm:10s}: median {t['median']:.3f} s/step "
                f"(IQR {t['q1']:.3f}-{t['q3']:.3f}, {t['n']} steps), "
                f"CPU {run['timed_cpu']['median']:.3f} s/step "
                f"({run['cpu_share']:.0%} of a core), peak {run['train_peak_mb']:.0f} MB, "
                f"{run['wall_seconds']:.0f} s"
                + (
                    f", GPU peak {run['gpu_peak_allocated_mb']:.0f} MB"
                    if "gpu_peak_allocated_mb" in run
                    else ""
                ),
                flush=True,
            )
            runs.append(run)
            if on_run is not None:
                on_run(runs)
    return runs


def summarise(runs: list[dict]) -> dict:
    """Per round: ratios of the run medians (trainer/bare; bare again/bare), of wall and of CPU time per
    step. Then medians with min-max over rounds, and a verdict against the A/A range."""
    by_round: dict[int, dict[tuple[str, str], dict]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[(r["pair"], r["arm"])] = r
    out: dict = {"rounds": []}
    for i, arms in sorted(by_round.items()):
        row = {"round": i}
        for pair, (num, den) in RATIOS.items():
            a, b = arms[(pair, num)], arms[(pair, den)]
            row[pair] = a["timed"]["median"] / b["timed"]["median"]
            row[pair + " cpu"] = a["timed_cpu"]["median"] / b["timed_cpu"]["median"]
            row[pair + " memory"] = a["train_peak_mb"] - b["train_peak_mb"]
            if "gpu_peak_allocated_mb" in a:
                row[pair + " gpu memory"] = a["gpu_peak_allocated_mb"] - b["gpu_peak_allocated_mb"]
        out["rounds"].append(row)
    for pair in RATIOS:
        for key in (pair, pair + " cpu", pair + " memory"):
            out[key] = spread([row[key] for row in out["rounds"]])
    for arm in ("trainer", "bare", "bare again"):
        mine = [r for r in runs if r["arm"] == arm]
        out[arm] = {
            "run_medians": spread([r["timed"]["median"] for r in mine]),
            "run_cpu_medians": spread([r["timed_cpu"]["median"] for r in mine]),
            "all_steps": spread([s for r in mine for s in r["step_seconds"]]),
            "cpu_share": median([r["cpu_share"] for r in mine]),
            "train_peak_mb": median([r["train_peak_mb"] for r in mine]),
            "process_peak_mb": median([r["process_peak_mb"] for r in mine]),
        }
        for key in ("gpu_peak_allocated_mb", "gpu_peak_reserved_mb", "gpu_peak_before_timed_mb"):
            if all(key in r for r in mine):
                out[arm][key] = median([r[key] for r in mine])
    if all("A/B gpu memory" in row for row in out["rounds"]):
        for pair in RATIOS:
            out[pair + " gpu memory"] = spread([row[pair + " gpu memory"] for row in out["rounds"]])
    # the comparison only holds if both sides train the same LoRA
    out["trainable_params"] = sorted({r["trainable_params"] for r in runs})
    for suffix in ("", " cpu"):
        noise = max(abs(row["A/A" + suffix] - 1) for row in out["rounds"])
        ab = out["A/B" + suffix]["median"]
        out["noise_floor" + suffix] = noise
        out["verdict" + suffix] = (
            "within the noise floor"
            if abs(ab - 1) <= noise
            else ("trainer slower" if ab > 1 else "trainer FASTER (suspect the method)")
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model instead of the SD1.5-size one")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of A/B + A/A pairs (order alternates)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed optimiser steps at the start of each run")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--photo", type=photo_size, default=PHOTO, help="JPEG size WxH (default 3000x2000)")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--no-report", action="store_true", help="save the results only (python -m bench.report)")
    args = ap.parse_args()

    base = base_spec(args, args.tiny) | {"warmup": args.warmup, "steps": args.steps}
    print(
        f"rank 8, batch 1, {base['resolution']} px from {args.photo[0]}x{args.photo[1]} JPEGs, "
        f"{args.rounds} rounds of A/B (trainer, bare) + A/A (bare, bare), "
        f"{args.warmup} warm-up + {args.steps} timed steps per run",
        flush=True,
    )
    runs = rounds(base, args.rounds)
    summary = summarise(runs)
    payload = {"args": vars(args), "base": base, "runs": runs, "summary": summary}
    path = save_results("speed", args.tiny, payload)
    print()
    print(speed_table(summary))
    print(f"\nResults: {path}")
    if not args.no_report:
        from .report import write_report

        print(f"Report: {write_report()}")


def _range(s: dict, digits: int = 3) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def speed_table(s: dict) -> str:
    rows = []
    for label, pair in (("trainer / bare (A/B)", "A/B"), ("bare again / bare (A/A, noise)", "A/A")):
        for metric, suffix in (("wall", ""), ("CPU", " cpu")):
            per_round = ", ".join(f"{r[pair + suffix]:.3f}" for r in s["rounds"])
            rows.append([label, metric, _range(s[pair + suffix]), per_round])
    ratio_table = table(["step-time ratio", "time", "median over rounds (min-max)", "per round"], rows)
    arm_rows = [
        [
            arm,
            _range(s[arm]["run_medians"]),
            f"{s[arm]['all_steps']['median']:.3f} ({s[arm]['all_steps']['q1']:.3f}-"
            f"{s[arm]['all_steps']['q3']:.3f})",
            _range(s[arm]["run_cpu_medians"]),
            f"{s[arm]['cpu_share']:.0%}",
            f"{s[arm]['train_peak_mb']:.0f}",
            f"{s[arm]['process_peak_mb']:.0f}",
        ]
        for arm in ("trainer", "bare", "bare again")
    ]
    arm_table = table(
        [
            "arm",
            "wall s/step: median of run medians (min-max)",
            "wall s/step: all timed steps, median (IQR)",
            "CPU s/step: median of run medians (min-max)",
            "CPU / wall",
            "timed-steps peak RSS MB",
            "process peak MB",
        ],
        arm_rows,
    )
    return (
        ratio_table
        + f"\n\nNoise floor (largest A/A deviation from 1 over rounds): wall ±{s['noise_floor']:.3f}, CPU "
        f"±{s['noise_floor cpu']:.3f}. Verdict: wall **{s['verdict']}**, CPU **{s['verdict cpu']}**.\n\n"
        + arm_table
    )


def runs_table(runs: list[dict]) -> str:
    rows = [
        [
            r["round"] + 1,
            r["pair"],
            r["arm"],
            f"{r['timed']['median']:.3f}",
            f"{r['timed']['q1']:.3f}-{r['timed']['q3']:.3f}",
            f"{r['timed']['min']:.3f}-{r['timed']['max']:.3f}",
            f"{r['timed_cpu']['median']:.3f}",
            f"{r['cpu_share']:.0%}",
            r["timed"]["n"],
            f"{r['train_peak_mb']:.0f}",
            f"{r['startup_seconds']:.0f}",
        ]
        for r in runs
    ]
    return table(
        [
            "round",
            "pair",
            "arm",
            "median s/step",
            "IQR",
            "min-max",
            "CPU s/step",
            "CPU / wall",
            "timed steps",
            "peak MB",
            "start→step 1 end s",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
