"""Seconds/step and peak memory: trainer vs the bare diffusers + peft loop, runs alternated A/B/A/B.

python -m bench.speed            # SD1.5-size model (random weights), 256 px on CPU / 512 px on a GPU
python -m bench.speed --tiny     # the tiny model, seconds per run (for developing the harness)
"""

from __future__ import annotations

import argparse

from .common import base_spec, dataset, median, run_child, save_results, table


def one_run(spec: dict, warmup: int) -> dict:
    r = run_child(spec)
    timed = r["step_seconds"][warmup:]
    return {
        "side": spec["side"],
        "rank": spec["rank"],
        "batch_size": spec["batch_size"],
        "resolution": spec["resolution"],
        "sec_per_step": median(timed),
        "step_seconds": r["step_seconds"],
        "train_peak_mb": r["train_peak_mb"],
        "train_delta_mb": r["train_peak_mb"] - r["rss_before_train_mb"],
        "process_peak_mb": r["process_peak_mb"],
        "trainable_params": r["trainable_params"],
        "wall_seconds": r["wall_seconds"],
    }


def ab_runs(base: dict, rounds: int, warmup: int, steps: int, log=print) -> list[dict]:
    runs = []
    for i in range(rounds):
        for side in ("trainer", "bare"):
            run = one_run({**base, "side": side, "steps": warmup + steps}, warmup) | {"round": i}
            log(
                f"  round {i + 1} {side:7s} rank {run['rank']:3d} batch {run['batch_size']}: "
                f"{run['sec_per_step']:.3f} s/step, training peak {run['train_peak_mb']:.0f} MB "
                f"({run['wall_seconds']:.0f} s)"
            )
            runs.append(run)
    return runs


def summarise(runs: list[dict]) -> dict:
    """Median ratio over rounds (each round's trainer run against the bare run right after it)."""
    by_round: dict[int, dict[str, dict]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["side"]] = r
    ratios = [p["trainer"]["sec_per_step"] / p["bare"]["sec_per_step"] for p in by_round.values()]
    mem = [p["trainer"]["train_peak_mb"] - p["bare"]["train_peak_mb"] for p in by_round.values()]
    side = {s: [r for r in runs if r["side"] == s] for s in ("trainer", "bare")}
    return {
        "ratio_median": median(ratios),
        "ratios": ratios,
        "trainer_sec_per_step": median([r["sec_per_step"] for r in side["trainer"]]),
        "bare_sec_per_step": median([r["sec_per_step"] for r in side["bare"]]),
        "trainer_train_peak_mb": median([r["train_peak_mb"] for r in side["trainer"]]),
        "bare_train_peak_mb": median([r["train_peak_mb"] for r in side["bare"]]),
        "trainer_process_peak_mb": median([r["process_peak_mb"] for r in side["trainer"]]),
        "bare_process_peak_mb": median([r["process_peak_mb"] for r in side["bare"]]),
        "peak_diff_mb_median": median(mem),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model instead of the SD1.5-size one")
    ap.add_argument("--rounds", type=int, default=2, help="A/B rounds of the main comparison")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of every run")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per run")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--sweep-rounds", type=int, default=1, help="A/B rounds per rank/batch point (0: skip)")
    ap.add_argument("--sweep-resolution", type=int, default=None, help="default: the main resolution")
    args = ap.parse_args()

    base = base_spec(args, args.tiny)
    print(f"Main comparison: rank 8, batch 1, {base['resolution']} px, {args.rounds} A/B rounds")
    main_runs = ab_runs(base, args.rounds, args.warmup, args.steps)
    summary = summarise(main_runs)
    sweep = []
    if args.sweep_rounds:
        sbase = dict(base)
        if args.sweep_resolution:
            sbase["resolution"] = args.sweep_resolution
            sbase["data"] = str(dataset(args.images, args.sweep_resolution))
        print(f"Sweep: rank 8/32/128 x batch 1/4 at {sbase['resolution']} px")
        for batch in (1, 4):
            for rank in (8, 32, 128):
                spec = {**sbase, "rank": rank, "batch_size": batch}
                sweep += ab_runs(spec, args.sweep_rounds, 1, max(1, args.steps - 1))
    payload = {"args": vars(args), "main_runs": main_runs, "summary": summary, "sweep": sweep}
    path = save_results("speed", args.tiny, payload)
    print()
    print(speed_table(summary))
    if sweep:
        print()
        print(sweep_table(sweep))
    print(f"\nResults: {path}")
    from .report import write_report

    print(f"Report: {write_report(args.tiny)}")


def speed_table(s: dict) -> str:
    return table(
        ["", "trainer", "bare loop", "trainer / bare"],
        [
            [
                "s/step (median)",
                f"{s['trainer_sec_per_step']:.3f}",
                f"{s['bare_sec_per_step']:.3f}",
                f"{s['ratio_median']:.3f} (rounds: {', '.join(f'{r:.3f}' for r in s['ratios'])})",
            ],
            [
                "training peak RSS, MB",
                f"{s['trainer_train_peak_mb']:.0f}",
                f"{s['bare_train_peak_mb']:.0f}",
                f"{s['peak_diff_mb_median']:+.0f} MB",
            ],
            [
                "process peak RSS (incl. loading), MB",
                f"{s['trainer_process_peak_mb']:.0f}",
                f"{s['bare_process_peak_mb']:.0f}",
                "",
            ],
        ],
    )


def sweep_table(sweep: list[dict]) -> str:
    rows = []
    keys = sorted({(r["batch_size"], r["rank"]) for r in sweep})
    for batch, rank in keys:
        t = [r for r in sweep if (r["batch_size"], r["rank"], r["side"]) == (batch, rank, "trainer")]
        b = [r for r in sweep if (r["batch_size"], r["rank"], r["side"]) == (batch, rank, "bare")]
        ts, bs = median([r["sec_per_step"] for r in t]), median([r["sec_per_step"] for r in b])
        tm, bm = median([r["train_peak_mb"] for r in t]), median([r["train_peak_mb"] for r in b])
        rows.append(
            [
                batch,
                rank,
                f"{t[0]['trainable_params'] / 1e6:.2f}M",
                f"{ts:.3f}",
                f"{bs:.3f}",
                f"{ts / bs:.3f}",
                f"{tm:.0f}",
                f"{bm:.0f}",
            ]
        )
    return table(
        [
            "batch",
            "rank",
            "LoRA params",
            "trainer s/step",
            "bare s/step",
            "ratio",
            "trainer peak MB",
            "bare peak MB",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
