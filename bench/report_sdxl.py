"""docs/benchmarks.md's SDXL section (bench/report.py calls it): the trainer vs bare row (bench/sdxl_speed.py)
and the 8 GB recipe measured (bench/sdxl_8gb.py), from the GPU results where there are some (results/real),
else from the CPU check with the tiny SDXL (results/tiny)."""

from __future__ import annotations

from .common import load_results

METHOD = """\
- **Model**: on a GPU, SDXL base 1.0's real architecture (UNet 2.57 B, CLIP-L, OpenCLIP-G, KL-f8 VAE;
  `bench/sdxl_memory.py`'s configs) with random weights, built on the GPU in fp16 and written once as a
  diffusers folder (`bench/sdxl_model.py`); tokenizers: the project's offline CLIP tokenizer. On a CPU, the
  tiny SDXL of the tests (`models/tiny_sdxl.py`). Both sides load the same folder.
- **Bare side** (`bench/sdxl_bare.py`): diffusers' `train_text_to_image_lora_sdxl.py` written down: each
  part loaded with `from_pretrained`, UNet and both text encoders in the compute dtype, the VAE in float32,
  LoRA through `unet.add_adapter` with the LoRA weights cast to float32 (`cast_training_params`), every step
  the photo decoded, resized (BILINEAR) and centre-cropped with its original size and crop corner kept for
  the time ids, the VAE encode, both encoders (penultimate hidden states side by side, OpenCLIP-G's pooled
  output), DDPM noise, epsilon MSE.
- **Equal settings**: rank 16 / alpha 8 on kohya's UNet targets (UNet only), batch 1, gradient checkpointing
  on both, bf16 on a GPU (the VAE float32 on both), AdamW lr 1e-4 wd 1e-2, clip 1.0, no caches (the example
  has none), 1024x1024 from 3000x2000 JPEGs on a GPU; the LoRA parameter count is checked equal. The trainer
  is driven through `run_training(build_config({...}))` with the dataset doctor off (it runs before
  training, so it is in no step).
- **Timing and memory**: `bench/speed.py`'s rounds (A/B + A/A, order alternating, each run its own process)
  and `bench/clock.py`'s optimiser-step marks; on a GPU each mark first waits for the GPU
  (`torch.cuda.synchronize`) and the memory figure is `torch.cuda.max_memory_allocated` over the timed steps
  (reset at the end of the warm-up), with `max_memory_reserved` beside it; on a CPU, peak RSS.
- **8 GB recipe** (`bench/sdxl_8gb.py`): the trainer with `configs/sdxl_8gb.yaml` as it is (UNet only, rank
  16, bf16, gradient checkpointing, latents cached to disk, text-encoder outputs cached, 8-bit AdamW,
  gradient accumulation 4), with the model, photos, output and step count replaced, samples and checkpoint
  states off, and `enable_bucket: false` so every image is 1024x1024; Adafactor instead of 8-bit AdamW only
  where bitsandbytes cannot run (the result says which ran). Memory of the timed steps (after the caches are
  filled and the warm-up steps), and of loading + caches + warm-up separately."""

PENDING = """\
**GPU figures pending: {what}.** `PARTS="model 8gb speed compile" bash bench/gpu_figures.sh` on a GPU
machine takes them in one run (`PARTS="model speed"` or `PARTS="model 8gb"` for one part) and writes
`sdxl_speed.json`, `sdxl_8gb.json` and (the catalogue job with `torch.compile`) `generation-compile.json`;
copied into `bench/results/real/`, `python -m bench.report` puts the real-size figures (1024x1024, bf16,
`torch.cuda.max_memory_allocated`) here in place of the tiny CPU ones, which check the harness and say
nothing about SDXL's speed or memory."""

TINY_NOTE = """\
On the tiny SDXL at 64 px the model is a few milliseconds of a step and the rest is the 6 MP photo's
decode and resize, where the trainer decodes in draft mode (libjpeg's DCT scaling, section 2) and the
example decodes the full photo: about 40 ms of CPU per image in the trainer's favour, which is what a
trainer/bare CPU ratio below the A/A range shows here, not a faster training step. At 1024 px from 3000x2000
no draft scale applies (the short side, 2000, halved is under 1024), so on the GPU both sides decode the
full photo; the trainer resizes with LANCZOS, the example with BILINEAR."""


def sdxl_section() -> str | None:
    from .sdxl_8gb import summary_table
    from .sdxl_speed import gpu_table
    from .speed import speed_table

    speed = load_results("sdxl_speed", tiny=False) or load_results("sdxl_speed", tiny=True)
    if speed and not speed["summary"]:  # the time ran out before a whole round
        speed = load_results("sdxl_speed", tiny=True) if not speed["tiny"] else None
    eight = load_results("sdxl_8gb", tiny=False) or load_results("sdxl_8gb", tiny=True)
    if not speed and not eight:
        return None
    parts = [
        "## SDXL: trainer vs a bare diffusers + peft SDXL loop, and the 8 GB recipe measured",
        "",
        "```",
        "bash bench/gpu_figures.sh      # on a GPU: all of it, ~5 min   [--tiny: the CPU check]",
        "python -m bench.sdxl_speed      # trainer vs bare (A/B) + bare vs bare (A/A)   [--tiny]",
        "python -m bench.sdxl_8gb        # configs/sdxl_8gb.yaml measured                [--tiny]",
        "```",
        "",
        METHOD,
        "",
    ]
    pending = [
        name for name, r in (("trainer vs bare", speed), ("the 8 GB recipe", eight)) if not r or r["tiny"]
    ]
    if eight and not eight["tiny"] and eight["measured"].get("gpu_peak_before_timed_mb", 0) > 8 * 1024:
        pending.append("the 8 GB recipe's loading and caching phase (over 8 GiB when last measured)")
    if pending:
        parts += [PENDING.format(what=" and ".join(pending)), ""]
    if speed and speed["tiny"]:
        parts += [TINY_NOTE, ""]
    if speed:
        parts += _speed_part(speed, speed_table, gpu_table)
    if eight:
        m = eight["machine"]
        kind = "tiny SDXL, CPU: timings of the harness only" if eight["tiny"] else "real-size SDXL"
        parts += [
            f"### The 8 GB recipe ({kind})",
            "",
            f"{m.get('gpu') or 'no GPU'}; torch {m.get('torch', '?')}; lora_scripts "
            f"`{m.get('lora_scripts', '?')}`. " + summary_table(eight),
        ]
        measured = eight["measured"]
        if measured.get("gpu_reserved_before_timed_mb", 0) > measured.get("gpu_peak_reserved_mb", 1e9):
            parts += [
                "",
                "The run's memory peak is before training, in loading, the caches (the float32 VAE "
                "encoding 1024x1024 images) and the warm-up, not in the training steps: that phase is what "
                "has to shrink for the whole run to fit an 8 GiB card.",
            ]
    return "\n".join(parts).rstrip()


def _speed_part(speed: dict, speed_table, gpu_table) -> list[str]:
    b, s, m = speed["base"], speed["summary"], speed["machine"]
    where = m.get("gpu") or f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('threads', 1)} thread"
    same = len(s["trainable_params"]) == 1
    params = ", ".join(f"{p:,}" for p in s["trainable_params"])
    precision = "fp32" if b["mixed_precision"] == "no" else b["mixed_precision"]
    out = [
        f"### Trainer vs bare ({'tiny SDXL, CPU' if speed['tiny'] else 'real-size SDXL'})",
        "",
        f"{where}; torch {m.get('torch', '?')}; lora_scripts `{m.get('lora_scripts', '?')}`. "
        f"{b['resolution']} px from {'x'.join(str(x) for x in b['photo'])} JPEGs, "
        f"{precision}, {speed['rounds_done']} round(s), {b['warmup']} warm-up + {b['steps']} timed steps "
        f"per run. LoRA parameters: {params} "
        f"({'the same on both sides' if same else 'NOT the same on both sides: the comparison is void'}).",
        "",
        speed_table(s),
    ]
    if gpu_table(s):
        out += ["", gpu_table(s)]
    return out + [""]
