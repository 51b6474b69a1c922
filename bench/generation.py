"""Images/s of the catalogue job (`lora-scripts batch`: one pipeline, LoRA fused once, prompts batched, each
prompt encoded once) vs a bare diffusers loop over the same prompts (load_lora_weights, one pipe() call per
image), with a bare-vs-bare A/A pair for the noise floor. Same model, steps, size, sampler, CFG, seeds and
LoRA; both sides save PNGs; each run is its own process and the order alternates between rounds.

python -m bench.generation --tiny        # the tiny model on CPU (32 px), for the harness and the docs
python -m bench.generation               # SD1.5's architecture with random weights: 512 px fp16 on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .common import CACHE, ROOT, THREADS, median, save_results, table

ROUND_ORDER = {
    0: [("A/B", "job"), ("A/B", "bare"), ("A/A", "bare"), ("A/A", "bare again")],
    1: [("A/A", "bare again"), ("A/A", "bare"), ("A/B", "bare"), ("A/B", "job")],
}
RATIOS = {"A/B": ("job", "bare"), "A/A": ("bare again", "bare")}
COLOURS = ["black", "white", "blue", "green", "red", "silver"]
DEVICES = ["phone", "tablet", "laptop", "watch"]


# --- the model (a diffusers folder both sides load) and a random kohya LoRA for it ----------------------
def model_folder(tiny: bool) -> Path:
    folder = CACHE / ("gen-tiny-sd15" if tiny else "gen-sd15-random")
    if (folder / "model_index.json").is_file():
        return folder
    import torch

    from lora_scripts.models.tiny import assemble_pipeline, build_full_size_sd15, build_tiny_sd

    print("Building the model with random weights (once)...", flush=True)
    pipe = build_tiny_sd() if tiny else assemble_pipeline(*build_full_size_sd15())
    if not tiny:
        pipe.to(torch.float16)  # half the file; both sides run it in the same precision
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    tmp.replace(folder)
    return folder


def lora_file(folder: Path, rank: int = 16) -> Path:
    """A random rank-`rank` kohya LoRA on the UNet's attention and the text encoder (what training writes)."""
    path = folder.with_name(folder.name + "-lora") / "house_style.safetensors"
    if path.is_file():
        return path
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from lora_scripts.config import NetworkConfig
    from lora_scripts.inject.lora import inject_text_encoder, inject_unet, read_weights
    from lora_scripts.save.kohya import to_kohya

    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    inject_unet(pipe.unet, NetworkConfig(lora_rank=rank, lora_alpha=rank))
    inject_text_encoder(pipe.text_encoder, NetworkConfig(lora_rank=rank, lora_alpha=rank))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in [*pipe.unet.named_parameters(), *pipe.text_encoder.named_parameters()]:
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    parts = {"unet": read_weights(pipe.unet), "te": read_weights(pipe.text_encoder)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_kohya(parts, "float"), str(path), metadata={"ss_base_model_version": "sd_v1"})
    return path


def write_job(spec: dict, out: Path) -> Path:
    """The items CSV and job YAML of the job side; the bare side reads the same prompts from it."""
    import csv

    import yaml

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "category", "colour"])
        for i in range(spec["items"]):
            writer.writerow([f"DEV-{i:04d}", DEVICES[i % 4], COLOURS[i % len(COLOURS)]])
    job = {
        "base_model": spec["model"],
        "items": "items.csv",
        "prompt": "<lora:house_style:0.8> a {colour} {category}, product photo, neon style",
        "negative_prompt": "blurry, low quality",
        "lora_dir": str(Path(spec["lora"]).parent),
        "images_per_item": spec["per_item"],
        "seed": 1,
        **{k: spec[k] for k in ("width", "height", "steps", "cfg", "sampler", "batch_size")},
        "output_dir": "out",
        **({"compile": True} if spec.get("compile") else {}),
    }
    (out / "job.yaml").write_text(yaml.safe_dump(job), encoding="utf-8")
    return out / "job.yaml"


# --- the two sides (each in its own process: `python -m bench.generation --child '<json spec>'`) ----------
def job_side(spec: dict, folder: Path) -> dict:
    from lora_scripts.batch.run import run_job
    from lora_scripts.progress import read_progress

    job = write_job(spec, folder)
    run_job(job, show_bar=False)
    events = read_progress(folder / "out" / "progress.jsonl")
    start = next(e["time"] for e in events if e["event"] == "start")
    end = next(e["time"] for e in events if e["event"] == "end")
    result = {"images": events[0]["total"], "seconds": end - start}
    ticks = [e for e in events if e["event"] == "batch"]
    if len(ticks) > 1:  # after the first batch (which holds torch.compile's compiling): the steady rate
        result["steady_images_per_s"] = (ticks[-1]["done"] - ticks[0]["done"]) / (end - ticks[0]["time"])
    return result


def bare_side(spec: dict, folder: Path) -> dict:
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline

    from lora_scripts.batch.config import load_job
    from lora_scripts.batch.run import plan_job

    plan = plan_job(load_job(write_job(spec, folder)))  # the job's own prompts and seeds, nothing else
    gpu = torch.cuda.is_available()
    pipe = StableDiffusionPipeline.from_pretrained(spec["model"], safety_checker=None)
    pipe = pipe.to("cuda" if gpu else "cpu", torch.float16 if gpu else torch.float32)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(spec["lora"], adapter_name="house_style")
    pipe.set_adapters(["house_style"], [0.8])
    pipe.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    for work in plan.works:
        image = pipe(
            prompt=work.spec.prompt,
            negative_prompt=work.spec.negative_prompt,
            num_inference_steps=work.spec.steps,
            guidance_scale=work.spec.cfg_scale,
            width=work.spec.width,
            height=work.spec.height,
            generator=torch.Generator("cpu").manual_seed(work.spec.seed),
        ).images[0]
        path = folder / "out" / work.file
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return {"images": len(plan.works), "seconds": time.perf_counter() - started}


def child(spec: dict) -> None:
    import torch

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    folder = Path(spec["out"])
    result = (job_side if spec["side"] == "job" else bare_side)(spec, folder)
    result["wall_seconds"] = time.perf_counter() - started
    if torch.cuda.is_available():
        result["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def run_child(spec: dict) -> dict:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore"
    )
    command = [sys.executable, "-m", "bench.generation", "--child", json.dumps(spec)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-5000:])
        raise RuntimeError(f"benchmark child failed: {spec['side']}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# --- rounds, summary, results ------------------------------------------------------------------------------
def same_work(job_out: Path, bare_out: Path) -> float:
    """Mean absolute pixel difference (0-255) between the job's and the bare loop's images: small when both
    made the same images (fused vs unfused LoRA and batching differ only by float noise)."""
    import numpy as np
    from PIL import Image

    diffs = []
    for path in sorted(bare_out.rglob("*.png")):
        ours = np.asarray(Image.open(job_out / path.relative_to(bare_out)).convert("RGB"), dtype=np.float32)
        diffs.append(
            float(np.abs(ours - np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)).mean())
        )
    return median(diffs)


def rounds(spec: dict, count: int, work: Path) -> tuple[list[dict], float]:
    runs, check = [], float("nan")
    for i in range(count):
        for pair, arm in ROUND_ORDER[i % 2]:
            folder = work / f"round{i}-{pair.replace('/', '')}-{arm.replace(' ', '_')}"
            shutil.rmtree(folder, ignore_errors=True)
            r = run_child({**spec, "side": "job" if arm == "job" else "bare", "out": str(folder)})
            r.update(round=i, pair=pair, arm=arm, images_per_s=r["images"] / r["seconds"])
            print(
                f"  round {i + 1} {pair} {arm:10s}: {r['images_per_s']:.3f} images/s "
                f"({r['images']} images in {r['seconds']:.1f} s; process {r['wall_seconds']:.0f} s)",
                flush=True,
            )
            runs.append(r)
        if i == 0:
            check = same_work(work / "round0-AB-job" / "out", work / "round0-AB-bare" / "out")
    return runs, check


def summarise(runs: list[dict]) -> dict:
    by_round: dict[int, dict] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[(r["pair"], r["arm"])] = r
    rows = []
    for i, arms in sorted(by_round.items()):
        row = {"round": i}
        for pair, (num, den) in RATIOS.items():
            row[pair] = arms[(pair, num)]["images_per_s"] / arms[(pair, den)]["images_per_s"]
        rows.append(row)
    noise = max(abs(row["A/A"] - 1) for row in rows)
    speedup = median([row["A/B"] for row in rows])
    return {
        "rounds": rows,
        "speedup": speedup,  # job images/s over bare images/s (> 1: the job is faster)
        "noise_floor": noise,
        "images_per_s": {
            a: median([r["images_per_s"] for r in runs if r["arm"] == a]) for a in RATIOS["A/B"]
        },
        "verdict": "within the noise floor"
        if abs(speedup - 1) <= noise
        else ("job faster" if speedup > 1 else "job SLOWER"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="The tiny model (CPU, seconds).")
    parser.add_argument("--items", type=int, help="Catalogue rows (default: 16 tiny, 32 otherwise).")
    parser.add_argument("--per-item", type=int, default=2, help="Images per item.")
    parser.add_argument("--size", type=int, help="Image side (default: 32 tiny, 512 on a GPU, 128 on CPU).")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--compile", action="store_true", help="The job with compile: true (its steady rate is printed too)."
    )
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    import torch

    gpu = torch.cuda.is_available()
    folder = model_folder(args.tiny)
    size = args.size or (32 if args.tiny else 512 if gpu else 128)
    spec = {
        "model": str(folder),
        "lora": str(lora_file(folder)),
        "items": args.items or (16 if args.tiny else 32),
        "per_item": args.per_item,
        "width": size,
        "height": size,
        "steps": args.steps,
        "cfg": 7.0,
        "sampler": "Euler a",
        "batch_size": args.batch_size,
        "device": "cuda" if gpu else "cpu",
        "compile": args.compile,
    }
    print(
        f"{spec['items'] * spec['per_item']} images of {size}x{size}, {args.steps} steps, on {spec['device']}"
    )
    work = CACHE / ("gen-runs-tiny" if args.tiny else "gen-runs")
    shutil.rmtree(work, ignore_errors=True)  # an interrupted earlier run's outputs are not a job's
    runs, check = rounds(spec, args.rounds, work)
    summary = summarise(runs)
    summary["job_vs_bare_mean_abs_pixel_diff"] = check
    name = "generation-compile" if args.compile else "generation"
    path = save_results(name, args.tiny, {"spec": spec, "runs": runs, "summary": summary})
    shutil.rmtree(work, ignore_errors=True)
    print(table(["", "images/s"], [[a, f"{v:.3f}"] for a, v in summary["images_per_s"].items()]))
    print(
        f"job / bare: {summary['speedup']:.2f}x (A/A noise floor +-{summary['noise_floor']:.1%}: "
        f"{summary['verdict']}); job vs bare images differ by {check:.2f}/255 on average"
    )
    steady = [r["steady_images_per_s"] for r in runs if "steady_images_per_s" in r]
    if steady:
        print(f"job after its first batch: {median(steady):.3f} images/s (median of {len(steady)} runs)")
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
