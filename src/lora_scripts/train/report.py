"""output_dir/report.html: loss curve, a sample grid per checkpoint, the resolved config and timings."""

from __future__ import annotations

import html
from pathlib import Path

from PIL import Image

from ..config import Config
from ..config.show import resolved_yaml
from ..save.atomic import atomic_write_text
from ..save.grid import make_grid


def write_report(cfg: Config, result, timings: dict[str, float]) -> Path:
    out = cfg.output.output_dir
    val = result.validation
    loss_png = _loss_plot(result.losses, out / "loss.png", val.scores if val else [])
    replies = {s: paths for s, paths in result.samples.items() if paths and paths[0].suffix == ".json"}
    images = {s: paths for s, paths in result.samples.items() if s not in replies}
    grid_png = _sample_grid(images, cfg.sample.sample_prompts, out / "samples" / "grid.png")
    steps_per_s = result.steps / result.seconds if result.seconds else 0.0
    rows = [
        ("LoRA file", result.lora_path.name),
        ("steps", f"{result.steps} of {result.plan.total_steps}"),
        ("precision", {"no": "fp32"}.get(result.precision, result.precision) + _asked(cfg, result)),
        ("training time", f"{result.seconds:.1f} s ({steps_per_s:.2f} steps/s)"),
    ]
    rows += [(name, f"{seconds:.1f} s") for name, seconds in timings.items()]
    if result.losses:
        rows.append(("loss first → last", f"{result.losses[0]:.4f} → {result.losses[-1]:.4f}"))
    if val and val.scores:
        rows.append(("held-out loss", val.summary()))
    stopped = (
        f"<p class='stopped'>Stopped at step {result.steps} of {result.plan.total_steps} (Ctrl-C or stop). "
        f"Saved {_e(result.lora_path.name)} and the training state; "
        "continue with <code>resume: auto</code>.</p>"
        if result.stopped
        else ""
    )
    alarm = f"<p class='stopped'><b>Overfitting?</b> {_e(val.alarm)}</p>" if val and val.alarm else ""
    parts = [
        f"<h1>LoRA training report: {_e(cfg.output.name())}</h1>" + stopped + alarm,
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>",
        "<h2>Loss</h2>"
        + (f'<img src="{loss_png.name}" alt="loss curve">' if loss_png else "<p>No steps.</p>"),
        "<h2>Samples</h2>"
        + (
            f'<img src="samples/{grid_png.name}" alt="sample grid">'
            if grid_png
            else _reply_tables(replies)
            if replies
            else "<p>No sample_prompts set (add some to watch the LoRA learn).</p>"
        ),
        _checkpoint_table(result.checkpoints, val),
        f"<h2>Config</h2><pre>{_e(resolved_yaml(cfg))}</pre>",
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>LoRA report</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}img{max-width:100%}"
        "th{text-align:left;padding-right:1em}pre{background:#f4f4f4;padding:1em}"
        ".stopped{background:#fff3cd;border:1px solid #e0b000;padding:.6em 1em}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    return atomic_write_text(page, out / "report.html")


def _asked(cfg: Config, result) -> str:
    asked = cfg.train.mixed_precision
    return f" (config asked for {asked}; not available on this device)" if asked != result.precision else ""


def _checkpoint_table(saved: list, val) -> str:
    """Every step checkpoint with its held-out loss, the best one marked, so a user can pick one."""
    if not saved:
        return ""
    best = val.best.step if val and val.best else None
    rows = "".join(
        f"<tr><td>{step}</td><td>{_e(path.name)}</td><td>{_e(loss or '-')}</td>"
        f"<td>{'best' if step == best else ''}</td></tr>"
        for step, path, loss in saved
    )
    head = "<tr><th>step</th><th>file</th><th>held-out loss</th><th></th></tr>"
    return f"<h2>Checkpoints</h2><table>{head}{rows}</table>"


def _loss_plot(losses: list[float], path: Path, scores: list | None = None) -> Path | None:
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, lw=0.8, alpha=0.5, label="loss")
    window = max(1, len(losses) // 20)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    ax.plot(range(1, len(losses) + 1), smooth, lw=2, label=f"mean of {window}")
    if scores:
        ax.plot([s.step for s in scores], [s.loss for s in scores], "o-", lw=2, label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _sample_grid(samples: dict[int, list[Path]], prompts: list[str], path: Path) -> Path | None:
    if not samples or not prompts:
        return None
    steps = sorted(samples)
    images = [Image.open(p).convert("RGB") for s in steps for p in samples[s]]
    make_grid(images, [f"step {s}" for s in steps], prompts).save(path)
    return path


def _reply_tables(samples: dict[int, list[Path]]) -> str:
    """Chat samples: per step, each prompt with the base model's and the LoRA's greedy reply."""
    from .replies import read_replies

    parts = []
    for step in sorted(samples):
        rows = "".join(
            f"<tr><td>{_e(r['prompt'])}</td><td>{_e(r['base'])}</td><td>{_e(r['lora'])}</td></tr>"
            for r in read_replies(samples[step][0])
        )
        parts.append(
            f"<h3>step {step}</h3><table><tr><th>prompt</th><th>base</th><th>LoRA</th></tr>{rows}</table>"
        )
    return "".join(parts)


def _e(value) -> str:
    return html.escape(str(value))
