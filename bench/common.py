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
THREADS = int(os.environ.get("BENCH_THREADS", "2"))


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
    tmp = path.with_suffix(".tmp")
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


# --- the data: square images at the training resolution (no resize cost on either side) ------------------
def dataset(count: int, resolution: int) -> Path:
    from PIL import Image

    from lora_scripts.demo import make_sample_images

    folder = CACHE / f"data-{count}-{resolution}"
    if (folder / "metadata.csv").is_file():
        return folder
    make_sample_images(folder, count=count)
    for png in folder.glob("*.png"):
        Image.open(png).convert("RGB").resize((resolution, resolution), Image.Resampling.LANCZOS).save(png)
    return folder


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


PROFILER = None  # a cProfile.Profile started at the loop's start when BENCH_PROFILE is set


def reset_peak() -> None:
    """Called by both sides right before their first step. Linux: reset this process's peak RSS (VmHWM), so
    the peak of the training loop alone can be read; start the profiler when one was asked for."""
    global PROFILER
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if os.environ.get("BENCH_PROFILE") and PROFILER is None:
        import cProfile

        PROFILER = cProfile.Profile()
        PROFILER.enable()


def _short(line: str) -> str:
    """Drop the folders in front of site-packages/, src/ and the repository root from a profile line."""
    return re.sub(r"/\S*?(site-packages/|/src/)", "", line.replace(str(ROOT) + "/", ""))


def profile_lines(top: int = 14) -> dict[str, list[str]]:
    """The profile since reset_peak: top functions by own time, and the project's own functions."""
    import io
    import pstats

    if PROFILER is None:
        return {}
    PROFILER.disable()
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
    """The run both benchmarks start from: model, data, resolution (GPU 512 px, CPU 256 px, tiny 64 px)."""
    import torch

    gpu = torch.cuda.is_available()
    resolution = args.resolution or (64 if tiny else 512 if gpu else 256)
    return {
        "model": str(model_file(tiny)),
        "data": str(dataset(args.images, resolution)),
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
    }


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table (also readable when printed)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
