"""A few lines from the SDXL results (bench/sdxl_8gb.py, bench/sdxl_speed.py), for the end of
bench/gpu_figures.sh's log.

python -m bench.gpu_summary [--tiny]
"""

from __future__ import annotations

import sys

from .common import load_results


def lines(tiny: bool) -> list[str]:
    out = []
    eight = load_results("sdxl_8gb", tiny)
    if eight:
        m, e = eight["measured"], eight["estimate"]
        out.append(
            f"8 GB recipe ({m['optimizer']}, {m['resolution']} px, batch 1, accumulation "
            f"{m['gradient_accumulation_steps']}): {m['s_per_step']['median']:.3f} s/optimiser step, "
            f"{m['s_per_image']['median']:.3f} s/image"
        )
        if "gpu_peak_allocated_mb" in m:
            gib = {k: v / 1024 for k, v in m.items() if k.startswith("gpu_")}
            out.append(
                f"  timed steps: max allocated {gib['gpu_peak_allocated_mb']:.2f} GiB, max reserved "
                f"{gib['gpu_peak_reserved_mb']:.2f} GiB, device in use {gib['gpu_device_used_mb']:.2f} GiB; "
                f"loading + caches + warm-up: max allocated {gib['gpu_peak_before_timed_mb']:.2f} GiB"
            )
        else:
            out.append(f"  timed steps: peak RSS {m['train_peak_rss_mb']:.0f} MB (no GPU)")
        out.append(f"  estimate, weights + optimizer state: {e['recipe_8gb_gib']:.2f} GiB")
        from .sdxl_8gb import verdict

        if verdict(m):
            out.append("  " + verdict(m).strip())
    else:
        out.append("8 GB recipe: no result")
    speed = load_results("sdxl_speed", tiny)
    if speed and not speed["summary"]:
        out.append(f"speed: {len(speed['runs'])} run(s), no whole round (the time ran out):")
        for r in speed["runs"]:
            gpu = (
                f", GPU max allocated {r['gpu_peak_allocated_mb']:.0f} MB"
                if "gpu_peak_allocated_mb" in r
                else ""
            )
            out.append(f"  {r['pair']} {r['arm']}: {r['timed']['median']:.3f} s/step{gpu}")
    elif speed:
        s = speed["summary"]
        ab, aa = s["A/B"], s["A/A"]
        out.append(
            f"speed ({speed['rounds_done']} round(s), {speed['base']['resolution']} px, "
            f"{speed['base']['mixed_precision']}): trainer/bare {ab['median']:.3f} "
            f"({ab['min']:.3f}-{ab['max']:.3f}), "
            f"A/A {aa['median']:.3f} ({aa['min']:.3f}-{aa['max']:.3f}), noise ±{s['noise_floor']:.3f}: "
            f"{s['verdict']}; s/step trainer {s['trainer']['run_medians']['median']:.3f}, bare "
            f"{s['bare']['run_medians']['median']:.3f}; LoRA params {s['trainable_params']}"
        )
        if "gpu_peak_allocated_mb" in s["trainer"]:
            out.append(
                f"  GPU max allocated (timed steps): trainer {s['trainer']['gpu_peak_allocated_mb']:.0f} MB, "
                f"bare {s['bare']['gpu_peak_allocated_mb']:.0f} MB, bare again "
                f"{s['bare again']['gpu_peak_allocated_mb']:.0f} MB"
            )
        else:
            out.append(
                f"  peak RSS (timed steps): trainer {s['trainer']['train_peak_mb']:.0f} MB, bare "
                f"{s['bare']['train_peak_mb']:.0f} MB"
            )
    else:
        out.append("speed: no result")
    return out


if __name__ == "__main__":
    print("\n".join(lines("--tiny" in sys.argv)))
