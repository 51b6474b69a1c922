"""Where a step's time goes, trainer vs bare loop: cProfile over the timed steps (after the warm-up).

python -m bench.profile          # SD1.5-size model, 128 px from 3000x2000 JPEGs
python -m bench.profile --tiny   # the tiny model magnifies fixed per-step costs (the model itself is cheap)
"""

from __future__ import annotations

import argparse
import os

from .common import PHOTO, base_spec, photo_size, run_child, save_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--steps", type=int, default=20, help="profiled steps per side")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--photo", type=photo_size, default=PHOTO)
    ap.add_argument("--resolution", type=int, default=None)
    args = ap.parse_args()
    base = base_spec(args, args.tiny) | {"warmup": 2, "steps": args.steps}
    os.environ["BENCH_PROFILE"] = "1"
    out = {}
    for side in ("trainer", "bare"):
        r = run_child({**base, "side": side})
        out[side] = {"profile": r["profile"], "step_seconds": r["step_seconds"]}
        print(f"--- {side}: {sum(r['step_seconds']):.2f} s for {args.steps} steps (profiled)")
        print("\n".join(r["profile"]["own_time"]))
    for side in ("trainer", "bare"):
        print(f"--- {side}, project and bench functions by cumulative time")
        print("\n".join(out[side]["profile"]["project"]))
    payload = {"args": vars(args), "resolution": base["resolution"], "timer": "process CPU time", **out}
    path = save_results("profile", args.tiny, payload)
    print(f"\nResults: {path}")


if __name__ == "__main__":
    main()
