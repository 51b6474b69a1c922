"""One benchmark run in its own process: `python -m bench.worker '<json spec>'` prints `RESULT {...}`."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import warnings


def main() -> None:
    spec = json.loads(sys.argv[1])
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    from . import common

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as out:
        spec.setdefault("out", out)
        if spec["side"] == "bare":
            from .bare_loop import train_bare

            result = train_bare(spec)
        else:
            from .trainer_side import train_project

            result = train_project(spec)
    result["profile"] = common.profile_lines()
    result["process_peak_mb"] = common.max_rss_mb()
    result["wall_seconds"] = time.perf_counter() - started
    result["spec"] = {k: v for k, v in spec.items() if k != "out"}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
