"""Where a step's time goes, trainer vs bare loop: cProfile from the first step to the end of the run.

python -m bench.profile --tiny   # the tiny model magnifies fixed per-step costs (the model itself is cheap)
"""

from __future__ import annotations

import argparse
import os

from .common import dataset, model_file, run_child, save_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--resolution", type=int, default=None)
    args = ap.parse_args()
    resolution = args.resolution or (64 if args.tiny else 256)
    base = {
        "model": str(model_file(args.tiny)),
        "data": str(dataset(8, resolution)),
        "resolution": resolution,
        "rank": 8,
        "batch_size": 1,
        "seed": 0,
        "lr": 1e-4,
        "device": "cpu",
        "steps": args.steps,
    }
    os.environ["BENCH_PROFILE"] = "1"
    out = {}
    for side in ("trainer", "bare"):
        r = run_child({**base, "side": side})
        out[side] = {"profile": r["profile"], "step_seconds": r["step_seconds"]}
        print(f"--- {side}: {sum(r['step_seconds']):.2f} s for {args.steps} steps (profiled)")
        print("\n".join(r["profile"]["own_time"]))
    print("--- trainer, project functions by cumulative time")
    print("\n".join(out["trainer"]["profile"]["project"]))
    path = save_results("profile", args.tiny, {"args": vars(args), **out})
    print(f"\nResults: {path}")


if __name__ == "__main__":
    main()
