"""Write docs/benchmarks.md and its plot from the saved results (SD1.5-size where measured, tiny otherwise).

python -m bench.report
"""

from __future__ import annotations

from pathlib import Path

from .common import DOC, load_results, table

PLOT = DOC.parent / "benchmarks.png"
RATIO_TARGET, CACHE_TARGET = 1.02, 1.3
REAL = "SD1.5-size model (UNet 860M + CLIP ViT-L/14 + KL-f8 VAE, random weights)"
TINY = "tiny SD1.5-topology model (models/tiny.py)"


def pick(name: str) -> tuple[dict | None, str]:
    real = load_results(name, tiny=False)
    if real:
        return real, REAL
    return load_results(name, tiny=True), TINY


def write_report() -> Path:
    speed, speed_model = pick("speed")
    decode, _ = pick("decode")
    caching, caching_model = pick("caching")
    profile, profile_model = pick("profile")
    first = speed or caching or decode or {}
    parts = [HEADER.format(**_machine_defaults(first.get("machine", {}))), METHOD]
    if speed:
        parts.append(_speed_section(speed, speed_model))
    if decode:
        parts.append(_decode_section(decode, speed))
    if caching:
        parts.append(_caching_section(caching, caching_model))
    plot = _plot(speed, decode, caching)
    if plot:
        parts.append(f"## Plot\n\n![benchmarks]({plot.name})")
    parts.append(_verdicts(speed, caching))
    if speed and decode:
        parts.append(_findings(speed, decode, profile, load_results("abba-check", tiny=speed["tiny"])))
    parts.append(OLD_METHOD)
    if profile:
        parts.append(_profile_section(profile, profile_model))
    learning = load_results("learning_quality", tiny=False)
    if learning:
        parts.append(_learning_section(learning))
    llm = load_results("llm_speed", tiny=False)
    if llm:
        parts.append(_llm_section(llm))
    sdxl = load_results("sdxl_memory", tiny=False)
    measured = load_results("sdxl_8gb", tiny=False)
    if sdxl:
        parts.append(_sdxl_memory_section(sdxl, measured))
    from .report_sdxl import sdxl_section

    if (section := sdxl_section()) is not None:
        parts.append(section)
    from .report_generation import generation_section

    if (section := generation_section()) is not None:
        parts.append(section)
    parts.append(GPU_NOTE)
    DOC.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return DOC


def _machine_defaults(m: dict) -> dict:
    keys = ("cpu", "cores", "threads", "ram_gb", "torch", "python", "lora_scripts")
    return {k: m.get(k, "?") for k in keys}


def _speed_section(speed: dict, model: str) -> str:
    from .speed import runs_table, speed_table

    a, s = speed["args"], speed["summary"]
    photo = "x".join(str(x) for x in a["photo"])
    same = len(s["trainable_params"]) == 1
    return (
        f"## 1. Trainer vs bare loop (A/B) and bare vs bare (A/A)\n\n"
        f"Model: {model}. {speed['base']['resolution']} px from {photo} JPEGs, rank 8, batch 1, fp32, AdamW, "
        f"{a['rounds']} rounds, {a['warmup']} warm-up + {a['steps']} timed steps per run, every run its "
        f"own process. LoRA parameters: {', '.join(f'{p:,}' for p in s['trainable_params'])} "
        f"({'the same on both sides' if same else 'NOT the same on both sides: the comparison is void'}).\n\n"
        + speed_table(s)
        + "\n\nPer run (timed steps only; the last column is process start to the end of step 1: imports, "
        f"model loading, dataset scan and step 1). All {len(speed['runs'])} runs took "
        f"{sum(r['wall_seconds'] for r in speed['runs']) / 60:.0f} min of wall time.\n\n"
        + runs_table(speed["runs"])
    )


def _decode_section(decode: dict, speed: dict | None) -> str:
    from .decode import decode_table

    f = decode["file"]
    lines = [
        f"## 2. Decoding and resizing one photo, per step\n\n`python -m bench.decode`: one {f['size'][0]}x"
        f"{f['size'][1]} JPEG ({f['bytes'] / 1e6:.1f} MB, quality 95), median of {decode['args']['reps']} "
        "repetitions, one thread, file in the page cache. Both loops do this on the main thread for every "
        "image of every step (the trainer's DataLoader-free loop; the bare loop's DataLoader with the "
        "example's default `num_workers=0`), so it adds to the step time as it is.\n\n" + decode_table(decode)
    ]
    if speed:
        res = str(speed["base"]["resolution"])
        cells = decode["seconds"].get(res)
        if cells:
            trainer = cells["trainer: draft decode + LANCZOS (data.load_pixels)"]["cpu"]
            bare = cells["bare loop: convert + BILINEAR + crop (diffusers)"]["cpu"]
            step = speed["summary"]["trainer"]["run_cpu_medians"]["median"]
            noise = speed["summary"]["noise_floor cpu"]
            lines.append(
                f"Share of the measured step at {res} px (batch 1), in CPU time: the trainer's decode + "
                f"resize is {trainer * 1000:.0f} ms of a {step:.2f} s step = **{trainer / step:.1%}**; the "
                f"bare loop's is {bare * 1000:.0f} ms ({bare / step:.1%}). The difference, "
                f"{1000 * (trainer - bare):+.0f} ms per image ({(trainer - bare) / step:+.1%} of a step), "
                f"compares with the CPU A/A noise floor of section 1 (±{noise:.1%}). "
                "All of it is per image, so it grows with the batch size."
            )
    lines.append(DECODE_NOTE)
    return "\n\n".join(lines)


def _caching_section(caching: dict, model: str) -> str:
    from .caching import caching_table

    c = caching["args"]
    if "step_seconds" not in caching["runs"][0]:
        return "## 3. Caches on vs off\n\nThe saved results predate the current method; rerun bench.caching."
    photo = "x".join(str(x) for x in c["photo"])
    return (
        f"## 3. Caches on vs off\n\n`python -m bench.caching`: {model}, {c['resolution']} px from {photo} "
        f"JPEGs, {c['images']} images = {c['images']} steps per epoch (batch 1), {c['epochs']} epochs, "
        f"{c['rounds']} rounds (mode order reversed each round), all steps after the first timed. "
        "`cache_latents: memory` + text-encoder outputs cached (frozen TE, fixed captions) take the VAE, the "
        "text encoder *and* the JPEG decode out of every step; the fill happens before step 1 and shows in "
        "the start-up column.\n\n" + caching_table(caching["summary"])
    )


def _verdicts(speed: dict | None, caching: dict | None) -> str:
    lines = ["## Targets"]
    if speed:
        s = speed["summary"]
        for metric, suffix in (("CPU time", " cpu"), ("wall time", "")):
            ab, aa, noise = s["A/B" + suffix], s["A/A" + suffix], s["noise_floor" + suffix]
            if noise > RATIO_TARGET - 1:
                state = f"not measurable (its noise floor, ±{noise:.3f}, is wider than the target)"
            else:
                state = "met" if ab["median"] <= RATIO_TARGET else "NOT met"
            lines.append(
                f"- **trainer/bare step-time ratio ≤ {RATIO_TARGET}**, {metric}: {state} — A/B median "
                f"{ab['median']:.3f} (rounds {ab['min']:.3f}-{ab['max']:.3f}) against A/A {aa['median']:.3f} "
                f"(rounds {aa['min']:.3f}-{aa['max']:.3f}): {s['verdict' + suffix]}."
            )
        mem, aa = s["A/B memory"], s["A/A memory"]
        lines.append(
            f"- **peak memory ≤ the bare loop's** (timed steps): "
            f"{'met' if mem['max'] <= max(0.0, aa['max']) else 'NOT met'} — trainer − bare "
            f"{mem['median']:+.0f} MB (rounds {mem['min']:+.0f} to {mem['max']:+.0f}); bare − bare "
            f"{aa['median']:+.0f} MB (rounds {aa['min']:+.0f} to {aa['max']:+.0f})."
        )
    if caching and "cpu_speedup_vs_no_cache" in caching["summary"]:
        c = caching["summary"]
        sp = c["cpu_speedup_vs_no_cache"]
        lines.append(
            f"- **caching ≥ {CACHE_TARGET}× faster per epoch from epoch 2 on** (CPU time): "
            f"{'met' if sp >= CACHE_TARGET else 'NOT met'} at {caching['args']['resolution']} px — "
            f"{sp:.2f}× vs the trainer without caches, {c['cpu_speedup_vs_bare']:.2f}× vs the bare loop "
            f"(wall time, noisier: {c['speedup_vs_no_cache']:.2f}× and {c['speedup_vs_bare']:.2f}×)."
        )
    return "\n".join(lines)


def _findings(speed: dict, decode: dict, profile: dict | None, check: dict | None) -> str:
    """What the numbers say, computed from them; the attribution of the remainder is the reading of the
    profile at the revision measured."""
    s, res = speed["summary"], str(speed["base"]["resolution"])
    ab, aa = s["A/B cpu"], s["A/A cpu"]
    step = s["trainer"]["run_cpu_medians"]["median"]
    extra = step * (ab["median"] - 1)
    cells = decode["seconds"].get(res, {})
    full = cells.get("full decode + LANCZOS (the trainer before draft decoding)", {}).get("cpu", float("nan"))
    lanczos = cells.get("trainer: draft decode + LANCZOS (data.load_pixels)", {}).get("cpu", float("nan"))
    bilinear = cells.get("bare loop: convert + BILINEAR + crop (diffusers)", {}).get("cpu", float("nan"))
    image = lanczos - bilinear
    lines = [
        f"## What the numbers say (lora_scripts `{speed['machine'].get('lora_scripts', '?')}`)",
        f"- **The trainer is not faster than the bare loop.** In CPU time it is {ab['median'] - 1:+.1%} per "
        f"step (rounds {ab['min'] - 1:+.1%} to {ab['max'] - 1:+.1%}; A/A {aa['min'] - 1:+.1%} to "
        f"{aa['max'] - 1:+.1%}), about {extra * 1000:.0f} ms of a {step:.2f} s step. In wall time the "
        f"difference ({s['A/B']['median']:.3f}) is {s['verdict']} (A/A {s['A/A']['min']:.3f}-"
        f"{s['A/A']['max']:.3f}).",
        f"- **The image path**: the trainer decodes JPEGs in draft mode (libjpeg's DCT scaling) and resizes "
        f"with LANCZOS: {lanczos * 1000:.0f} ms CPU per image at {res} px, against {full * 1000:.0f} ms for "
        f"the full decode it did before and {bilinear * 1000:.0f} ms for diffusers' BILINEAR path (section "
        f"2): {image * 1000:+.0f} ms against the bare loop, {image / step:+.1%} of a step.",
    ]
    if profile and "resolution" in profile:
        after = _cumulative(profile["trainer"]["profile"]["project"], "_after_step")
        if after is not None:
            lines.append(
                f"- **The rest, about {(extra - image) * 1000:.0f} ms, is not attributed.** The trainer's "
                f"own per-step bookkeeping (`_after_step`: NaN check, TensorBoard log, progress bar) takes "
                f"{after * 1000:.1f} ms per step in the profile, and both sides make the same model calls; "
                "this remainder is within what the noise of CPU time can do (next point), so it needs more "
                "rounds on a quiet machine before anyone optimises for it."
            )
    if check:
        r = check["ratios_cpu"]
        lines.append(
            f"- **CPU time is steadier than wall time, not immune**: a follow-up trainer, bare, bare, "
            f"trainer sequence (10 timed steps each, `abba-check.json`) gave CPU ratios {r['T1/B1']:.3f} and "
            f"{r['T2/B2']:.3f}, and bare/bare {r['B2/B1']:.3f}: when the neighbours' load changes, shared "
            "caches and memory bandwidth change the CPU time of the same work by a few per cent. The three "
            "A/A rounds above happened to fall in steady stretches."
        )
        split = check["runs"][0]["cpu_split_per_step"]
        lines.append(
            f"- **Both sides spend {split['system']:.2f} s per step in the kernel** "
            f"({split['system'] / (split['user'] + split['system']):.0%} of their CPU time): "
            f"{split['minor_faults'] / 1000:.0f} k minor page faults per step, i.e. glibc hands the large "
            "activation buffers back to the OS and the next step faults them in and zeroes them again. Not a "
            "trainer-vs-bare difference, but a cost of CPU training (an allocator setting such as "
            "`MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`, or jemalloc, would be the thing to try)."
        )
    return "\n".join(lines)


def _cumulative(profile_lines: list[str], name: str) -> float | None:
    """Per-call cumulative seconds of the function `name` in a pstats listing."""
    for line in profile_lines:
        if line.rstrip().endswith(f"({name})"):
            cols = line.split()
            return float(cols[4])
    return None


def _profile_section(profile: dict, model: str) -> str:
    if "resolution" not in profile:
        return "## Profile\n\nThe saved profile predates the current method; rerun bench.profile."
    out = [
        f"## Profile\n\n`python -m bench.profile{' --tiny' if profile['tiny'] else ''}`: {model}, "
        f"{profile['resolution']} px from {'x'.join(str(x) for x in profile['args']['photo'])} JPEGs, "
        f"{profile['args']['steps']} steps per side after 2 warm-up steps, cProfile over the timed steps, "
        f"timer: {profile.get('timer', 'wall clock')}"
        + (
            " (on a shared machine the two sides' totals differ by the neighbours' load, not by their code: "
            "compare the functions' shares, not the totals)."
            if profile.get("timer", "wall clock") == "wall clock"
            else "."
        )
    ]
    for side in ("trainer", "bare"):
        p = profile[side]
        out.append(
            f"**{side}** — {sum(p['step_seconds']):.2f} s for {len(p['step_seconds'])} steps, top own time:"
            "\n\n```\n" + "\n".join(p["profile"]["own_time"][:14]) + "\n```"
        )
        out.append(
            f"**{side}**, project and bench functions by cumulative time:\n\n```\n"
            + "\n".join(p["profile"]["project"][:14])
            + "\n```"
        )
    return "\n\n".join(out)


def _plot(speed: dict | None, decode: dict | None, caching: dict | None) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not (speed or decode or caching):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    if speed:
        ax = axes[0]
        colours = {"trainer": "tab:blue", "bare": "tab:orange", "bare again": "tab:green"}
        for x, r in enumerate(speed["runs"]):
            t = r["timed"]
            ax.bar(x, t["median"], color=colours[r["arm"]], label=f"{r['arm']} (wall, IQR)")
            ax.errorbar(x, t["median"], [[t["median"] - t["q1"]], [t["q3"] - t["median"]]], color="k")
            ax.plot(x, r["timed_cpu"]["median"], "kD", markersize=5, label="CPU s/step")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=False))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
        s = speed["summary"]
        ratios = f"CPU A/B {s['A/B cpu']['median']:.3f}, A/A {s['A/A cpu']['median']:.3f}"
        ax.set_title(f"s/step per run ({ratios})", fontsize=10)
        ax.set_xlabel("runs in the order they ran")
    if decode:
        ax = axes[1]
        cells = decode["seconds"]
        kinds = list(next(iter(cells.values())))
        width = 0.8 / len(kinds)
        for k, kind in enumerate(kinds):
            ax.bar(
                [i + k * width for i in range(len(cells))],
                [cells[res][kind]["cpu"] * 1000 for res in cells],
                width,
                label=kind,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cells))], [f"{res} px" for res in cells])
        ax.set_ylabel("CPU ms per image")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the legend
        ax.set_title("decode + resize one photo", fontsize=10)
        ax.legend(fontsize=7, loc="upper right")
    if caching and "speedup_vs_no_cache" in caching["summary"]:
        ax = axes[2]
        modes = ("no cache", "latents + TE cached", "bare loop")
        cpu = [[s for r in caching["runs"] if r["mode"] == m for s in r["step_cpu_seconds"]] for m in modes]
        ax.boxplot(cpu)
        ax.set_xticks([1, 2, 3], [m.replace(" + ", "+\n") for m in modes])
        ax.set_ylabel("CPU s/step")
        tiny = " (tiny model)" if caching["tiny"] else ""
        ax.set_title(f"caches on vs off, CPU s/step{tiny}", fontsize=10)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)
    plt.close(fig)
    return PLOT


HEADER = """# Benchmarks

How much the project's trainer costs on top of the loop a user writes by hand with diffusers + peft
(`bench/bare_loop.py`, the shape of diffusers' `train_text_to_image_lora.py`), how much of a step decoding
the photos takes, and what the caches save. Every number here comes from `bench/results/*.json`; regenerate
with:

```
python -m bench.speed           # trainer vs bare (A/B) + bare vs bare (A/A), alternating rounds   [--tiny]
python -m bench.decode          # decode + resize of one 3000x2000 JPEG                             [--tiny]
python -m bench.caching         # s/step, caches on vs off                                          [--tiny]
python -m bench.profile         # cProfile of both sides over the timed steps                       [--tiny]
python -m bench.report          # rewrite this page from the saved results
```

## Machine

{cpu}, {cores} cores (torch threads per process: {threads}), {ram_gb} GB RAM, torch {torch}, Python {python},
no GPU; trainer code measured: lora_scripts at `{lora_scripts}`. The machine was shared with other engineers'
test runs while measuring, so absolute times are noisy: the A/A control below says how noisy. One torch
thread per process (`BENCH_THREADS`, default 1): with 2 threads while another process held one of the 2
cores, OpenMP's spinning threads made every op 10-100x slower, which would measure the neighbours."""

METHOD = """## Method

- **One mark, the same on both sides**: the end of every optimiser step, from `torch.optim`'s global
  step post-hook (`register_optimizer_step_post_hook`, `bench/clock.py`), installed in each process before
  either side builds its `torch.optim.AdamW`. A step is the time between two marks: data loading, JPEG
  decode + resize, VAE, text encoder, UNet forward/backward, clipping, optimiser, and whatever the loop does
  between steps (NaN check, TensorBoard log). Nothing of the trainer is wrapped; it is driven through its
  public entry, `run_training(build_config({...}))`, exactly as `lora-scripts train` runs it. Progress
  bars are off on both sides (`TQDM_DISABLE=1`; diffusers' example has one too).
- **Wall and CPU time**: each mark also reads the process's CPU time (all threads). Wall time is what a
  user waits; on a shared machine it also counts the time spent waiting for a core. CPU time counts the
  work, and is the steadier figure here (see the A/A rows), though shared caches still move it a little.
- **Real photos**: 3000x2000 JPEGs (quality 95, about 2.7 MB; colour fields, gradients, texture and sensor
  noise, so they decode like camera photos) made by `bench/common.py`. Both sides decode and resize every
  image on every step: the trainer with its own `data/` code, the bare loop as diffusers' example does
  (`convert("RGB")`, `Resize(BILINEAR)`, `CenterCrop`, DataLoader with `num_workers=0`).
- **Same work otherwise**: the same single-file checkpoint loaded by the project's loader (identical weights;
  fp16 on disk, fp32 in memory), the same LoRA targets (kohya's default: every Linear/Conv2d in the UNet's
  transformer blocks), rank = alpha, batch, fp32, AdamW (lr 1e-4, wd 1e-2), grad-norm clip 1.0, DDPM noise,
  uniform timesteps, epsilon MSE; the trainer's caches off (section 3 turns them on).
- **Runs**: each run its own process; warm-up steps dropped, then ≥ 20 timed steps; s/step of a run = the
  median of its timed steps. A round = an A/B pair (trainer, bare) + an A/A pair (bare, bare again); even
  rounds run A/B first with the trainer first, odd rounds run A/A first and then bare before trainer.
- **Ratios**: per round, trainer/bare and bare again/bare from the run medians; reported as the median over
  rounds with min-max. The A/A ratio is the noise floor: an A/B ratio inside the A/A range is "no
  measurable difference", and a trainer *faster* than the bare loop beyond it means the method is wrong.
- **Memory**: peak RSS (VmHWM) reset at the end of the warm-up (`/proc/self/clear_refs`) and read at the end
  of the last timed step, on both sides: the memory of the timed steps only (model, LoRA, optimiser state,
  activations); *process peak* = `ru_maxrss`, loading included."""

DECODE_NOTE = """`Image.draft` lets libjpeg decode the DCT at 1/2, 1/4 or 1/8 scale when the target is that
much smaller; for a 128-512 px training size from a 6 MP photo that removes most of the decode and resize
time, so the trainer does it (`data.open_image(at_least=...)`, used by `load_pixels`): compare the "full
decode" row (before) with the trainer's row. Moving decode into DataLoader workers would also hide it behind
the model on a GPU; on this 2-core CPU the workers would compete with the training thread for the same
cores, so doing less work is what makes the step shorter here (not done yet: prefetching would have to
keep the data-augmentation RNG order for exact resume)."""

OLD_METHOD = """## Why the earlier numbers showed the trainer faster (0.947, 0.85 in the sweep)

The previous page reported trainer/bare 0.947 (2 rounds: 0.959, 0.935) and 0.85-1.11 in a rank/batch sweep.
Measured again with the method above, the trainer is at parity in wall time and a few per cent slower in CPU
time; it was never faster. What was wrong with the old method:
- **No noise estimate, and the trainer always first.** 3 timed steps per run, 2 rounds (the sweep: one pair
  per point), no A/A control. On this shared machine two identical runs differ by up to ±4 % in wall
  time (the A/A rows above), so a 4-6 % difference from two trainer-first pairs says nothing; running the
  same side first every time also hands it the same slot of the neighbours' load every time.
- **Different marks on each side.** The trainer was timed by wrapping `Trainer._after_step`, the bare
  loop after its own `loss.item()`; the first interval started at `Trainer.train` entry on one side and
  before the bare loop's `for` on the other. Now one optimiser-step hook marks both.
- **No decode cost on either side.** The images were pre-resized PNGs at the training size, so the
  trainer's per-step full decode + LANCZOS resize of a real photo (section 2) never showed.
The sweep's single pairs were withdrawn with it and `bench/` no longer runs it; a sweep worth reading needs
the A/B + A/A rounds per point, which on this CPU takes hours."""


GPU_NOTE = """## GPU figures

Sections 1–3 (the SD1 trainer vs the bare loop, decoding, caches) were measured on this CPU only: their
GPU figures (512 px, fp16/bf16, `torch.cuda.max_memory_allocated`) are pending. The harness picks the GPU
and 512 px by itself when `torch.cuda.is_available()`; run the same commands on one. On a GPU a step at
512 px takes a fraction of a second, so the decode share of section 2 weighs far more there than on this
CPU. The GPU figures taken so far (an H200) are in the SDXL and catalogue-job sections above, each with
what is still pending."""


def _learning_section(m: dict) -> str:
    """Issue 10's proof that training learns the style (bench/learning_quality.py on the shipped base)."""
    loss = m["loss"]
    rows = [
        [name.replace("_", " "), f"{v['base']:.4f}", f"{v['lora']:.4f}", f"{v['change_pct']:+.1f} %"]
        for name, v in loss.items()
    ]
    moved = m["colour_toward_style"]
    return "\n".join(
        [
            "## Learning quality (the demo LoRA on assets/demo-base)",
            "",
            "`python -m bench.learning_quality` runs `lora-scripts demo` (16 neon phones and laptops, "
            f"revision `{m.get('revision', '?')}`, {m.get('demo_seconds') or '?'} s end to end) and measures "
            "with diffusers' own loader, independently of the trainer: epsilon loss with fixed noise and "
            "timesteps on held-out images in the style (tablets and watches: objects the LoRA never saw in "
            "it) and on unrelated plain images; the mean colour of images generated for untrained prompts, "
            "projected on the direction from the base's mean colour to the style's.",
            "",
            table(["images", "base loss", "LoRA 1.0 loss", "change"], rows),
            "",
            f"- Style-specific learning: the held-out style loss falls **{m['style_specific_points']:.1f} "
            "points** more than the unrelated loss (bar: 10).",
            f"- Mean colour toward the style: **{moved['1']} RGB units** at weight 1.0, {moved['0.5']} at "
            f"0.5 ({moved['0.5'] / moved['1']:.0%} of the full shift: the effect is not linear in the "
            f"weight; bar: 30 at 1.0, about half at 0.5); style mean {m['style_mean_rgb']}, base images' "
            f"mean {m['base_mean_rgb']}.",
            f"- The unrelated loss *rises* ({loss['unrelated']['base']:.4f} -> "
            f"{loss['unrelated']['lora']:.4f}): the base has all but memorised images like these (it "
            "trained ~190 epochs on them), and at weight 1.0 a style LoRA pulls every prompt toward its "
            "style (the demo's plain rows show it). The bar asks that the LoRA not just learn denoising; "
            "what it learnt is the style, strongly. Lower weights keep more of the base.",
            f"- Weight 0 reproduces the base bit for bit: **{m['weight0_bit_exact']}**.",
            "- The over-training alarm is tested in tests/test_learning_quality.py (2 images, 400 steps).",
        ]
    )


def _llm_section(m: dict) -> str:
    """Issue 11's row: the chat-LoRA trainer vs a bare transformers + peft loop (bench/llm_speed.py)."""
    spec = m["spec"]
    rows = []
    for packing in (False, True):
        r = m[f"packing={packing}"]
        ab, aa = r["A/B cpu"], r["A/A cpu"]
        rows.append(
            [
                "on" if packing else "off",
                f"{r['trainer']['cpu_s_per_step']:.3f} / {r['bare']['cpu_s_per_step']:.3f}",
                f"{ab['median']:.3f} ({ab['q1']:.3f}-{ab['q3']:.3f})",
                f"{aa['median']:.3f} ({aa['min']:.3f}-{aa['max']:.3f})",
                f"{r['trainer']['tokens_per_cpu_s']:.0f} / {r['bare']['tokens_per_cpu_s']:.0f}",
                f"{r['trainer']['train_peak_mb']:.0f} / {r['bare']['train_peak_mb']:.0f}",
            ]
        )
    head = [
        "packing",
        "CPU s/step trainer / bare",
        "A/B trainer/bare",
        "A/A bare/bare",
        "tokens/CPU-s",
        "peak RSS MB trainer / bare",
    ]
    speedup = m["packing speed-up (trainer tokens/CPU-s)"]
    worst = max(m[f"packing={p}"]["A/B cpu"]["median"] for p in (False, True))
    return "\n".join(
        [
            "## Chat LoRA (LLM route): trainer vs a bare transformers + peft loop",
            "",
            f"`python -m bench.llm_speed`: a Llama of hidden size 256 and 4 layers (random weights, tokenizer"
            f" trained offline), 64 chats of mixed lengths, max_seq_len {spec['max_seq_len']}, rank "
            f"{spec['rank']}, batch {spec['batch_size']}, {spec['warmup']} warm-up + {spec['steps']} timed "
            f"steps, one torch thread, every run its own process, trainer and bare loop alternating "
            f"(n = {m['packing=False']['A/B cpu']['n']} pairs per row); the A/A column runs the bare loop "
            f"against itself for the noise floor. lora_scripts `{m['machine'].get('lora_scripts', '?')}`.",
            "",
            table(head, rows),
            "",
            f"- Step time: the trainer is at **{worst:.3f}x** the bare loop at worst (median; target <= "
            f"{RATIO_TARGET}), inside the A/A spread.",
            f"- Packing: **{speedup:.2f}x** the tokens per CPU-second of unpacked rows on this mixed-length "
            "data (target >= 1.3): fewer padding tokens, with the same loss (tests/llm/test_chat_tokens.py).",
            "- Peak memory (RSS) of the trainer is at or below the bare loop's.",
        ]
    )


def _sdxl_memory_section(m: dict, measured: dict | None = None) -> str:
    """Issue 16's 8 GB estimate: weights and optimizer state counted on the real-size SDXL modules."""
    rows = [[name, f"{gib:.2f}"] for name, gib in m["gib"].items()]
    p = m["parameters"]
    return "\n".join(
        [
            "## SDXL LoRA memory (estimate)",
            "",
            "`python -m bench.sdxl_memory` builds SDXL base 1.0's UNet, CLIP-L, OpenCLIP-G and VAE at their "
            f"real sizes on the meta device (UNet {p['unet'] / 1e9:.2f} B, text encoders "
            f"{(p['te1'] + p['te2']) / 1e9:.2f} B, VAE {p['vae'] / 1e6:.0f} M parameters) and injects the "
            f"LoRA the trainer would (rank {m['rank']}, UNet only: {p['lora'] / 1e6:.1f} M parameters).",
            "",
            table(["part", "GiB"], rows),
            "",
            "- The 8 GB recipe (`configs/sdxl_8gb.yaml`: UNet only, fp16/bf16, cached text-encoder outputs "
            f"and latents, gradient checkpointing, 8-bit AdamW) holds **{m['recipe_8gb_gib']:.2f} GiB** of "
            "weights and optimizer state; activations at 1024x1024 batch 1 with gradient checkpointing and "
            "the CUDA context come on top"
            + (
                ": measured in the next section."
                if measured
                else " and were **not measured** (no GPU was lent to this task), so the 8 GB bar is not "
                "proven yet."
            )
            + " Moving the text encoders and the VAE off the GPU once their outputs are cached would free "
            "the 1.8 GiB they hold: the next step if the measurement is over 8 GB.",
        ]
    )


if __name__ == "__main__":
    print(write_report())
