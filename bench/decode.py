"""What decoding and resizing one camera photo costs per step, on the main thread, on one core.

python -m bench.decode           # 3000x2000 JPEG -> 512, 256 and 128 px squares
python -m bench.decode --tiny    # a few repetitions (CI)

The trainer reads every image with `data.open_image` (full decode, EXIF orientation, RGB) and
`data.resize_to_bucket` (LANCZOS to cover the bucket, centre crop) each step when latents are not cached; the
bare loop does what diffusers' example does (`convert("RGB")`, BILINEAR resize, centre crop). Both run in the
training process between two optimiser steps, so this time adds to every step. For comparison: the same
decode with Pillow's JPEG draft mode (the DCT decodes at 1/2, 1/4 or 1/8 scale, still at least the target
size), which is what an image pipeline that only needs a small picture can do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from .common import PHOTO, photo_size, photos, save_results, table


def _time(fn, reps: int) -> dict[str, float]:
    """Median CPU and wall time of `fn`. Decoding and resizing run on one thread, so CPU time is the work
    itself; wall time also counts waiting for a core on a shared machine."""
    fn()  # page cache and lazy imports out of the way
    cpu, wall = [], []
    for _ in range(reps):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return {"cpu": statistics.median(cpu), "wall": statistics.median(wall)}


def measure(path: Path, resolution: int, reps: int) -> dict[str, dict[str, float]]:
    import numpy as np
    from PIL import Image

    from lora_scripts.data import open_image, resize_to_bucket

    from .bare_loop import diffusers_preprocess

    bucket = (resolution, resolution)

    def decode_only():
        with Image.open(path) as img:
            img.load()

    def full_decode():
        img = resize_to_bucket(open_image(path), bucket)
        return np.asarray(img, dtype=np.float32) / 127.5 - 1.0

    def trainer():  # what data.load_pixels does: draft decode at the smallest DCT scale covering the bucket
        img = resize_to_bucket(open_image(path, at_least=max(bucket)), bucket)
        return np.asarray(img, dtype=np.float32) / 127.5 - 1.0

    return {
        "jpeg decode only": _time(decode_only, reps),
        "full decode + LANCZOS (the trainer before draft decoding)": _time(full_decode, reps),
        "trainer: draft decode + LANCZOS (data.load_pixels)": _time(trainer, reps),
        "bare loop: convert + BILINEAR + crop (diffusers)": _time(
            lambda: diffusers_preprocess(path, resolution), reps
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="fewer repetitions (the photo size stays)")
    ap.add_argument("--photo", type=photo_size, default=PHOTO)
    ap.add_argument("--images", type=int, default=8, help="the photo set (the first photo is timed)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions per cell (default 15, tiny 3)")
    args = ap.parse_args()
    reps = args.reps or (3 if args.tiny else 15)
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = sorted(photos(args.images, args.photo).glob("*.jpg"))[0]
    cells = {res: measure(path, res, reps) for res in (512, 256, 128)}
    payload = {
        "args": vars(args) | {"reps": reps},
        "file": {"name": path.name, "bytes": path.stat().st_size, "size": list(args.photo)},
        "seconds": {str(res): c for res, c in cells.items()},
    }
    out = save_results("decode", args.tiny, payload)
    print(decode_table(payload))
    print(f"\nResults: {out}")


def decode_table(payload: dict) -> str:
    cells = payload["seconds"]
    kinds = list(next(iter(cells.values())))
    rows = [
        [k, *(f"{cells[res][k]['cpu'] * 1000:.0f} ({cells[res][k]['wall'] * 1000:.0f})" for res in cells)]
        for k in kinds
    ]
    return table(["per image, CPU ms (wall ms), medians", *(f"to {res} px" for res in cells)], rows)


if __name__ == "__main__":
    main()
