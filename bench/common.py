"""Shared by the benchmarks: the benchmark model and data, subprocess runs, memory and timing helpers."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_OUT sends results, the page and the cache elsewhere (the CI smoke test uses a temp folder).
_OUT = Path(os.environ["BENCH_OUT"]) if os.environ.get("BENCH_OUT") else None
CACHE = (_OUT or ROOT / "bench") / ".cache"
RESULTS = _OUT / "results" if _OUT else ROOT / "bench" / "results"
DOC = _OUT / "benchmarks.md" if _OUT else ROOT / "docs" / "benchmarks.md"
THREADS = int(os.environ.get("BENCH_THREADS", "1"))  # one torch thread per process (see docs/benchmarks.md)


# --- the model: SD1.5's real architecture with random weights, or the project's tiny one -----------------
def model_file(tiny: bool) -> Path:
    """The single-file LDM checkpoint both sides load (built once, then reused)."""
    path = CACHE / ("tiny-sd15.safetensors" if tiny else "sd15-random-fp16.safetensors")
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if tiny:
        from lora_scripts.models.tiny import build_tiny_sd, save_tiny_single_file

        return save_tiny_single_file(build_tiny_sd(), path)
    import torch
    from safetensors.torch import save_file

    from lora_scripts.models.ldm_layout import pipeline_to_ldm
    from lora_scripts.models.tiny import build_full_size_sd15

    started = time.time()
    print("Building the SD1.5-size model with random weights (once)...", flush=True)
    unet, vae, te = build_full_size_sd15()
    sd = pipeline_to_ldm(unet.state_dict(), vae.state_dict(), te.state_dict(), "sd1")
    # fp16 on disk halves the file; the loader casts every weight to fp32, so both sides train in fp32.
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two benchmarks started at once must not clash
    save_file(sd, tmp, {"format": "pt"})
    tmp.replace(path)
    del torch
    print(f"  wrote {path} in {time.time() - started:.0f} s", flush=True)
    return path


def params_in_millions(tiny: bool) -> dict[str, float]:
    from safetensors import safe_open

    counts = {"unet": 0, "vae": 0, "text_encoder": 0}
    prefix = {
        "model.diffusion_model.": "unet",
        "first_stage_model.": "vae",
        "cond_stage_model.": "text_encoder",
    }
    with safe_open(model_file(tiny), framework="pt") as f:
        for key in f.keys():
            for p, part in prefix.items():
                if key.startswith(p):
                    counts[part] += _numel(f.get_slice(key).get_shape())
    return {k: round(v / 1e6, 1) for k, v in counts.items()}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


# --- the data: camera-sized JPEG photos, so decoding and resizing cost on both sides what they really cost --
PHOTO = (3000, 2000)  # a 6 MP camera photo


def photos(count: int, size: tuple[int, int] = PHOTO) -> Path:
    """`count` JPEGs of `size` (quality 95, about 2.7 MB at 3000x2000) with a metadata.csv of captions.

    Smooth colour fields, gradients, a mid-scale texture and sensor-like noise: their entropy, hence their
    decode time, is that of a real photo (a flat or tiny image would decode in no time)."""
    import csv

    import numpy as np
    from PIL import Image

    width, height = size
    folder = CACHE / f"photos-{count}-{width}x{height}"
    if (folder / "metadata.csv").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    subjects = ["a red fox", "a lighthouse", "a bowl of fruit", "a mountain lake", "an old bicycle", "a cat"]
    rows = []
    for i in range(count):
        rng = np.random.default_rng(i)
        fields = Image.fromarray((rng.random((8, 12, 3)) * 255).astype(np.uint8))
        coarse = rng.random((max(1, height // 16), max(1, width // 16), 3)) * 255
        texture = Image.fromarray(coarse.astype(np.uint8))
        pixels = np.asarray(fields.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) * 0.6
        pixels += np.asarray(texture.resize(size, Image.Resampling.BILINEAR), dtype=np.float32) * 0.3
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        pixels += (xx / width * 60 - yy / height * 40)[..., None]
        pixels += rng.normal(0, 7, pixels.shape).astype(np.float32)
        name = f"photo_{i:03d}.jpg"
        tmp = folder / f".{name}.{os.getpid()}.tmp"  # two benchmarks started at once must not clash
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(tmp, "JPEG", quality=95)
        tmp.replace(folder / name)
        rows.append({"filename": name, "prompt": f"a photo of {subjects[i % len(subjects)]}, detailed, {i}"})
    tmp = folder / f".metadata.csv.{os.getpid()}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["filename", "prompt"])
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(folder / "metadata.csv")
    return folder


def photo_size(text: str) -> tuple[int, int]:
    """'3000x2000' -> (3000, 2000) (argparse type)."""
    width, height = text.lower().split("x")
    return int(width), int(height)


# --- one run = one fresh subprocess, so its peak memory is its own ---------------------------------------
def run_child(spec: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), TQDM_DISABLE="1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.worker", json.dumps(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise RuntimeError(f"benchmark child failed: {spec}")
    return json.loads(lines[-1].removeprefix("RESULT "))


PROFILER = None  # a cProfile.Profile over the timed steps when BENCH_PROFILE is set


def reset_peak() -> None:
    """Linux: reset this process's peak RSS (VmHWM) so the peak of the timed steps alone can be read; start
    the profiler when one was asked for. Called by bench/clock.py at the end of the last warm-up step."""
    global PROFILER
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if os.environ.get("BENCH_PROFILE") and PROFILER is None:
        import cProfile

        PROFILER = cProfile.Profile(time.process_time)  # CPU time: what the code costs, not the neighbours
        PROFILER.enable()


def stop_profiler() -> None:
    if PROFILER is not None:
        PROFILER.disable()


def _short(line: str) -> str:
    """Drop the folders in front of site-packages/, src/ and the repository root from a profile line."""
    return re.sub(r"/\S*?(site-packages/|/src/)", "", line.replace(str(ROOT) + "/", ""))


def profile_lines(top: int = 14) -> dict[str, list[str]]:
    """The profile of the timed steps: top functions by own time, and the project's own functions."""
    import io
    import pstats

    if PROFILER is None:
        return {}
    out = {}
    for key, sort, restrict in (
        ("own_time", "tottime", top),
        ("project", "cumulative", r"lora_scripts|bench"),
    ):
        buf = io.StringIO()
        stats = pstats.Stats(PROFILER, stream=buf)
        if key == "own_time":
            stats.strip_dirs()
        stats.sort_stats(sort)
        stats.print_stats(restrict) if isinstance(restrict, int) else stats.print_stats(restrict, top)
        body = buf.getvalue().splitlines()
        start = next((i for i, ln in enumerate(body) if ln.lstrip().startswith("ncalls")), 0)
        out[key] = [_short(ln) for ln in body[start:] if ln.strip()]
    return out


def rss_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def base_spec(args, tiny: bool) -> dict:
    """The run every benchmark starts from: model, photos, resolution (GPU 512 px, CPU 128 px, tiny 64 px)."""
    import torch

    gpu = torch.cuda.is_available()
    resolution = args.resolution or (64 if tiny else 512 if gpu else 128)
    return {
        "model": str(model_file(tiny)),
        "data": str(photos(args.images, args.photo)),
        "photo": list(args.photo),
        "resolution": resolution,
        "rank": 8,
        "batch_size": 1,
        "seed": 0,
        "lr": 1e-4,
        "device": "cuda" if gpu else "cpu",
    }


# --- results ----------------------------------------------------------------------------------------------
def save_results(name: str, tiny: bool, payload: dict) -> Path:
    folder = RESULTS / ("tiny" if tiny else "real")
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "tiny": tiny, **payload}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1))
    return path


def load_results(name: str, tiny: bool) -> dict | None:
    path = RESULTS / ("tiny" if tiny else "real") / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    mem = Path("/proc/meminfo").read_text().split()[1] if Path("/proc/meminfo").is_file() else "0"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": THREADS,
        "ram_gb": round(int(mem) / 2**20, 1),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "lora_scripts": source_revision(),
    }


def source_revision() -> str:
    """The trainer's code that was measured: BENCH_SRC_REV when set (e.g. a `git archive` snapshot put first
    on PYTHONPATH while the checkout is mid-refactor), else the checkout's HEAD."""
    if os.environ.get("BENCH_SRC_REV"):
        return os.environ["BENCH_SRC_REV"]
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table (also readable when printed)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
