"""The `lora-scripts` command: train, demo, config-docs; label, doctor, generate, chat, lora tools and ui
are registered by their packages."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from .console import console, guarded, setup_logging

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train LoRA adapters for Stable Diffusion."
)

DEBUG = typer.Option(False, "--debug", help="Show full tracebacks and library logs.")


@app.command()
def train(
    config: Path = typer.Option(..., "--config", "-c", help="YAML config file (see configs/)."),
    overrides: list[str] = typer.Argument(None, help="key=value pairs that override the config."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the resolved config and the data found, then exit."
    ),
    processes: int | None = typer.Option(
        None,
        "--processes",
        help="Data-parallel processes (one per GPU) through accelerate; batch_size is split among them. "
        "Default 1, or the --accelerate-config file's num_processes (a given --processes wins).",
        show_default=False,
    ),
    accelerate_config: Path = typer.Option(
        None,
        "--accelerate-config",
        help="An accelerate config file (FSDP / DeepSpeed for chat-LLM LoRA, on GPUs); its num_processes "
        "unless --processes is given.",
    ),
    debug: bool = DEBUG,
) -> None:
    """Train a LoRA from a YAML config."""
    setup_logging(debug)

    def action():
        from .config import load_config
        from .train.launch import LAUNCHED, check_accelerate_config, check_processes

        if processes is not None:  # --processes 0: one sentence before anything is read or imported
            check_processes(processes, gpus=0)
        check_accelerate_config(accelerate_config)  # so is a missing --accelerate-config file
        if os.environ.get(LAUNCHED):  # one of --processes N: the launching command said the config's notes
            logging.getLogger("lora_scripts.config.load").setLevel(logging.WARNING)
        cfg = load_config(config, overrides)  # before torch & co.: a config error takes 0.3 s, not 8
        from .models.detect import check_vae, locate

        locate(cfg.model.base_model, cfg.model.allow_pickle)  # a wrong base_model too, before the imports
        if cfg.model.vae:  # and a wrong vae
            check_vae(cfg.model.vae, cfg.model.allow_pickle)
        from .train.family_defaults import with_family_defaults
        from .train.run import device_note, prepare_data, run_training, will_write
        from .train.versions import as_new_version

        # an explicit --processes (even 1) with a file overrides the file's num_processes; without a file,
        # 1 (or no --processes) trains in this process
        if (processes not in (None, 1) or accelerate_config) and not dry_run:
            from .train.launch import relaunch

            prepare_data(with_family_defaults(as_new_version(cfg)))  # input errors said once, not per process
            args = ["train", "--config", str(config), *(overrides or []), *(["--debug"] if debug else [])]
            sys.exit(relaunch(processes, args, accelerate_config))
        if dry_run:
            from .config.show import resolved_yaml

            cfg = with_family_defaults(as_new_version(cfg))
            index, _held_out = prepare_data(cfg)
            console.print(resolved_yaml(cfg), highlight=False, markup=False)
            console.print(index.summary(), highlight=False, markup=False)
            console.print(will_write(cfg), highlight=False, markup=False)
            console.print(device_note(cfg.train), highlight=False, markup=False)
            return
        result = run_training(cfg)
        console.print(f"[bold green]LoRA saved:[/] {escape(str(result.lora_path))}")
        console.print(f"Run log: {cfg.output.output_dir / 'train.log'}", markup=False)

    guarded(action, debug)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_run"), "--out", help="Folder for the demo model, images and LoRA."),
    steps: int = typer.Option(None, "--steps", help="Training steps (default 300; 200 with --llm)."),
    llm: bool = typer.Option(False, "--llm", help="The chat-model demo: a customer-service tone LoRA."),
    debug: bool = DEBUG,
) -> None:
    """Teach the demo base model a neon style from 16 images; compare base | LoRA 0.5 | 1.0 (CPU, minutes).
    With --llm: a tiny chat model learns a customer-service tone; base | LoRA replies (CPU, seconds)."""
    setup_logging(debug)

    def action():
        if llm:
            from .demo_llm import run_llm_demo

            run_llm_demo(out, steps or 200)
            return
        from .demo import run_demo

        run_demo(out, steps or 300)

    guarded(action, debug)


@app.command("config-docs")
def config_docs(out: Path = typer.Option(Path("docs/config.md"), "--out")) -> None:
    """Write the config reference (every key, default and meaning) generated from the config classes."""
    from .config.show import reference_markdown

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reference_markdown(), encoding="utf-8")
    console.print(f"Wrote {out}", markup=False)


def _register_packages() -> None:
    # Each stage owns its commands; importing typer-only modules keeps `--help` fast.
    from .batch import commands as batch_cmds
    from .generate import chat_command
    from .generate import commands as generate_commands
    from .label import commands as label_commands
    from .tools import commands as tools_commands
    from .ui import commands as ui_commands

    for module in (label_commands, generate_commands, batch_cmds, chat_command, tools_commands, ui_commands):
        module.register(app)


_register_packages()


def main() -> None:
    honour_stop_signals()
    try:
        app()
    finally:
        quiet_exit_on_stop_signals()


def honour_stop_signals() -> None:
    """Ctrl-C and `kill` (SIGTERM: a UI's stop button, docker stop) stop every phase with exit 130.
    A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring it: a run started
    by a script could not be stopped with kill -INT at all.

    One process of a data-parallel run (accelerate's launcher sets WORLD_SIZE) keeps SIGTERM's default:
    the launcher sends it when another process has failed, often while this one waits in a collective
    (init_process_group, a barrier) where no Python handler runs, and it then waited 30 s for its SIGKILL.
    The training loop's GracefulStop still turns SIGTERM into a stop after the same step."""
    import os
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("WORLD_SIZE", "1") in ("", "1"):
        signal.signal(signal.SIGTERM, stop)


def quiet_exit_on_stop_signals() -> None:
    """Once the command has finished, a stop signal just ends the process: raised while Python shuts down
    (a data-parallel launcher stopping the processes after one failed), KeyboardInterrupt would print an
    'Exception ignored' traceback."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


if __name__ == "__main__":
    main()
