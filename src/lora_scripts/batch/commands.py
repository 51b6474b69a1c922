"""CLI command `batch` (registered on the main app by cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

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

        load_job(job)  # a bad job file: one sentence before the model libraries load (8 s), not one per rank
        if processes not in (None, 1):  # 1, given or not: this process
            from ..train.launch import relaunch

            extra = [*(["--new"] if new else []), *(["--debug"] if debug else [])]
            code = relaunch(processes, ["batch", str(job), *extra])  # accelerate launch -m lora_scripts
            if code:
                sys.exit(code)
            return
        if ray:
            from .ray_run import run_on_ray

            counts = run_on_ray(job, ray, new)
            console.print(
                f"[bold green]{counts['index']} image(s) in the index[/], {counts['failed']} failed"
            )
            return
        from .run import run_job

        counts = run_job(job, new=new)
        if "index" in counts:
            console.print(
                f"[bold green]{counts['index']} image(s) in the index[/], {counts['failed']} failed; "
                f"see index.html and failed.csv in the output folder"
            )

    guarded(action, debug)
