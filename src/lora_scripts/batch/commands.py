"""CLI command `batch` (registered on the main app by cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from ..console import console, guarded, setup_logging

EXAMPLES = """
Examples:\n
  lora-scripts batch configs/batch_catalogue.yaml               (one GPU or the CPU; run again to resume)\n
  lora-scripts batch configs/batch_catalogue.yaml --processes 4 (4 GPUs of one machine, items by rank)\n
  accelerate launch --multi_gpu --num_processes 4 -m lora_scripts batch configs/batch_catalogue.yaml\n
  lora-scripts batch configs/batch_catalogue.yaml --ray auto    (a running Ray cluster; local: start one here)
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(batch)


def batch(
    job: Path = typer.Argument(..., help="The job YAML (see configs/batch_catalogue.yaml)."),
    new: bool = typer.Option(
        False, "--new", help="Start over although output_dir holds another job's results (moved aside)."
    ),
    processes: int | None = typer.Option(
        None,
        "--processes",
        help="Processes on this machine (one per GPU), started with accelerate launch. Default 1.",
        show_default=False,
    ),
    ray: str = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Run on Ray: 'local' (start a cluster here), 'auto' (the running one) or an address "
        "(ray://head:10001). The value is required.",
        show_default=False,
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
) -> None:
    """Make the catalogue's images: items x prompt template -> images/, index.csv, index.html (resumable)."""
    setup_logging(debug)

    def action():
        if ray is not None and (not ray or ray.startswith("-")):  # `--ray --new`: click takes --new as it
            from ..errors import ConfigError

            raise ConfigError(
                f"--ray needs an address, not '{ray}'",
                "Write --ray local (a cluster on this machine), --ray auto or --ray ray://HEAD:10001",
            )
        if ray and processes is not None:
            from ..errors import ConfigError

            raise ConfigError(
                "--ray and --processes cannot be used together", "Ray starts one worker per GPU"
            )
        from .config import load_job

        spec = load_job(job)  # a bad job file: one sentence before the model libraries load, not one per rank
        if processes not in (None, 1):  # 1, given or not: this process
            from ..train.launch import relaunch
            from .run import plan_job

            plan_job(spec)  # items, columns, LoRA names, output: one sentence here, not one per rank

            extra = [*(["--new"] if new else []), *(["--debug"] if debug else [])]
            code = relaunch(processes, ["batch", str(job), *extra])  # accelerate launch -m lora_scripts
            if code:
                sys.exit(code)
            return
        if ray:
            from .ray_run import run_on_ray

            counts = run_on_ray(job, ray, new)
            console.print(summary(counts, spec.output_dir), soft_wrap=True)
            return
        from .run import run_job

        counts = run_job(job, new=new)
        if "index" in counts:  # rank 0, which merged the index
            console.print(summary(counts, spec.output_dir), soft_wrap=True)

    guarded(action, debug)


def summary(counts: dict, output_dir: str) -> str:
    """The run's last line. Failed images leave the exit status 0 (a partial catalogue is a normal day), so
    the line itself says how many failed and which file says why."""
    from .store import split_uri

    made = f"{counts['index']} image(s) in the index"
    if not counts["failed"]:
        return f"[bold green]{made}[/], none failed; see index.html in {escape(output_dir)}"
    local = split_uri(output_dir)[0] is None
    failed = str(Path(output_dir, "failed.csv")) if local else f"{output_dir.rstrip('/')}/failed.csv"
    return (
        f"[bold green]{made}[/]; [bold yellow]{counts['failed']} image(s) failed[/]: the reasons are in "
        f"{escape(failed)}; fix them and run the same command again to make the rest"
    )
