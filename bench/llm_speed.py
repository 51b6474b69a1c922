"""The LLM row: seconds/step, tokens/s and peak memory of the trainer vs a bare transformers + peft loop at
equal settings (bench/llm_sides.py), with the bare-vs-bare A/A control, without and with packing. Same
method as bench/speed.py: every run its own process, one torch thread, orders alternating between rounds.

python -m bench.llm_speed            # a small Llama (hidden 256, 4 layers), 64 chats of mixed lengths
python -m bench.llm_speed --tiny     # hidden 64, 2 layers (seconds; for developing the harness)
"""

from __future__ import annotations

import argparse

from .common import median, run_child, save_results, table
from .speed import RATIOS, ROUND_ORDER, spread


def one_run(spec: dict, pair: str, arm: str, round_: int) -> dict:
    r = run_child({**spec, "side": "trainer" if arm == "trainer" else "bare"})
    w, n = spec["warmup"], spec["steps"]
    tokens = r["tokens_at_step"][w + n - 1] - r["tokens_at_step"][w - 1]
    return {
        "round": round_,
        "pair": pair,
        "arm": arm,
        "packing": spec["packing"],
        "timed": spread(r["step_seconds"]),
        "timed_cpu": spread(r["step_cpu_seconds"]),
        "tokens_per_s": tokens / sum(r["step_seconds"]),
        "tokens_per_cpu_s": tokens / sum(r["step_cpu_seconds"]),
        "train_peak_mb": r["train_peak_mb"],
        "trainable_params": r["trainable_params"],
        "losses": r["losses"][:3],
    }


def rounds(spec: dict, count: int) -> list[dict]:
    runs = []
    for i in range(count):
        for pair, arm in ROUND_ORDER[i % 2]:
            run = one_run(spec, pair, arm, i)
            print(
                f"  packing {spec['packing']!s:5} round {i + 1} {pair} {arm:10s}: "
                f"CPU {run['timed_cpu']['median']:.3f} s/step, {run['tokens_per_cpu_s']:.0f} tokens/CPU-s, "
                f"peak {run['train_peak_mb']:.0f} MB",
                flush=True,
            )
            runs.append(run)
    return runs


def summarise(runs: list[dict]) -> dict:
    by_round: dict[int, dict] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[(r["pair"], r["arm"])] = r
    out: dict = {}
    for pair, (num, den) in RATIOS.items():
        ratios = [
            a[(pair, num)]["timed_cpu"]["median"] / a[(pair, den)]["timed_cpu"]["median"]
            for a in by_round.values()
        ]
        out[pair + " cpu"] = spread(ratios)
    for arm in ("trainer", "bare"):
        mine = [r for r in runs if r["arm"] == arm]
        out[arm] = {
            "cpu_s_per_step": median([r["timed_cpu"]["median"] for r in mine]),
            "tokens_per_cpu_s": median([r["tokens_per_cpu_s"] for r in mine]),
            "train_peak_mb": median([r["train_peak_mb"] for r in mine]),
        }
    out["trainable_params"] = sorted({r["trainable_params"] for r in runs})
    out["noise_floor"] = max(abs(x - 1) for x in [out["A/A cpu"]["min"], out["A/A cpu"]["max"]])
    return out


def main() -> None:
    from .llm_sides import llm_files

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    model, data = llm_files(args.tiny)
    from transformers import AutoTokenizer

    pad_id = AutoTokenizer.from_pretrained(model).pad_token_id
    base = {
        "route": "llm",
        "model": str(model),
        "data": str(data),
        "max_seq_len": 512,
        "rank": 8,
        "batch_size": 4,
        "lr": 1e-4,
        "seed": 0,
        "device": "cpu",
        "pad_id": pad_id,
        "warmup": args.warmup,
        "steps": args.steps,
    }
    results = {}
    for packing in (False, True):
        print(f"packing: {packing}", flush=True)
        results[f"packing={packing}"] = summarise(rounds({**base, "packing": packing}, args.rounds))
    off, on = results["packing=False"], results["packing=True"]
    results["packing speed-up (trainer tokens/CPU-s)"] = (
        on["trainer"]["tokens_per_cpu_s"] / off["trainer"]["tokens_per_cpu_s"]
    )
    rows = [
        [
            name,
            f"{r['A/B cpu']['median']:.3f} ({r['A/B cpu']['min']:.3f}-{r['A/B cpu']['max']:.3f})",
            f"{r['A/A cpu']['median']:.3f} ({r['A/A cpu']['min']:.3f}-{r['A/A cpu']['max']:.3f})",
            f"{r['trainer']['tokens_per_cpu_s']:.0f} / {r['bare']['tokens_per_cpu_s']:.0f}",
            f"{r['trainer']['train_peak_mb']:.0f} / {r['bare']['train_peak_mb']:.0f}",
        ]
        for name, r in (("no packing", off), ("packing", on))
    ]
    print(
        table(["LLM LoRA", "trainer/bare CPU s/step", "A/A", "tokens/CPU-s trainer / bare", "peak MB"], rows)
    )
    speedup = results["packing speed-up (trainer tokens/CPU-s)"]
    print(f"packing speed-up, trainer tokens per CPU second: {speedup:.2f}x")
    print(save_results("llm_speed", args.tiny, {"spec": base, **results}))


if __name__ == "__main__":
    main()
