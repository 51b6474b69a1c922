"""One benchmark run in its own process: `python -m bench.worker '<json spec>'` prints `RESULT {...}`.

The spec names the side ("trainer" or "bare"), the warm-up and timed optimiser steps, model, data and
hyper-parameters. Both sides are timed by the same StepClock (bench/clock.py), installed here before either
side builds its optimiser.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import warnings


def main() -> None:
    started = time.perf_counter()
    spec = json.loads(sys.argv[1])
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    from . import common
    from .clock import StepClock

    clock = StepClock(spec["warmup"], spec["steps"])
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as out:
        spec.setdefault("out", out)
        total = spec["warmup"] + spec["steps"]
        if spec.get("route") == "llm":  # bench/llm_speed.py: the chat-LoRA sides
            from .llm_sides import train_llm_bare, train_llm_trainer

            extra = (train_llm_bare if spec["side"] == "bare" else train_llm_trainer)(spec, total)
        elif spec.get("route") == "sdxl" and spec["side"] == "bare":  # bench/sdxl_speed.py
            from .sdxl_bare import train_sdxl_bare

            extra = train_sdxl_bare(spec, total)
        elif spec["side"] == "bare":
            from .bare_loop import train_bare

            extra = train_bare(spec, total)
        else:
            from .trainer_side import train_project

            extra = train_project(spec, total)
    result = clock.result() | extra
    if result["optimizer_steps"] != total:
        raise RuntimeError(f"expected {total} optimiser steps, the hook saw {result['optimizer_steps']}")
    result["startup_seconds"] = result.pop("first_step_end") - started  # loading + caches + step 1
    result["profile"] = common.profile_lines()
    result["process_peak_mb"] = common.max_rss_mb()
    result["wall_seconds"] = time.perf_counter() - started
    result["spec"] = {k: v for k, v in spec.items() if k != "out"}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
