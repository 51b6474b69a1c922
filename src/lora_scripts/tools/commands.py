"""CLI commands of `tools`: `lora-scripts lora {inspect,merge,merge-loras,resize,extract}`.

Thin wrappers: each parses options, runs the tool under `guarded` (one sentence and exit 2 on bad input)
and prints what was done. Heavy imports stay inside the commands so `--help` is fast.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from ..console import guarded, setup_logging
from ..models.detect import locate
from .weighted import parse_weighted

lora_app = typer.Typer(
    no_args_is_help=True, help="LoRA tools: inspect, merge into a checkpoint, merge LoRAs, resize, extract."
)
out_console = Console(emoji=False)  # results go to stdout (pipeable); logs and errors to stderr

DEBUG = typer.Option(False, "--debug", help="Show full tracebacks and library logs.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace the output if it exists.")
OUT = typer.Option(..., "--out", "-o", help="Output file (.safetensors).")
LORA_PRECISION = typer.Option(
    "auto", "--precision", help="auto (as the input), fp16, bf16 or float.", case_sensitive=False
)
PRECISIONS = ("auto", "fp16", "bf16", "float")
MERGE_PRECISIONS = ("keep", "fp16", "bf16", "float")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `lora-scripts` app."""
    app.add_typer(lora_app, name="lora")


def _precision(value: str, allowed: tuple[str, ...] = PRECISIONS) -> str:
    from ..errors import ConfigError

    if value.lower() not in allowed:
        raise ConfigError(f"--precision must be one of {', '.join(allowed)}, not '{value}'")
    return value.lower()


@contextlib.contextmanager
def _as_stage(tool: str) -> Iterator[None]:
    """Progress events for the web UI's bar: 0 of 1 while the tool runs, 1 of 1 when it is done (the
    tools' own loops have no hook here)."""
    from ..progress import stage_progress

    with stage_progress(tool) as progress:
        progress.begin(1)
        yield
        progress.advance()


def _wrote(path: Path, what: str) -> None:
    out_console.print(f"[bold green]{what}:[/] {escape(str(path))}")


@lora_app.command()
def inspect(
    file: Path = typer.Argument(..., help="A kohya-format LoRA .safetensors, or a PEFT adapter folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    top: int = typer.Option(15, "--top", help="How many of the most frequent tags to show."),
    debug: bool = DEBUG,
) -> None:
    """Base family, rank/alpha per module group, modules touched, trigger words, tags, training facts."""
    setup_logging(debug)

    def action():
        from .inspect_lora import describe, render
        from .llm_adapter import describe_adapter, is_adapter_folder, render_adapter

        if is_adapter_folder(file):  # the LLM route's output
            report, view = describe_adapter(file), render_adapter
        else:
            report, view = describe(file, top), render
        if as_json:
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            out_console.print(view(report))

    guarded(action, debug)


@lora_app.command()
def resize(
    file: Path = typer.Argument(..., help="The LoRA to resize."),
    out: Path = OUT,
    rank: int | None = typer.Option(None, "--rank", help="New rank (capped at each module's rank)."),
    energy: float | None = typer.Option(
        None, "--energy", help="Instead of --rank: keep the smallest rank retaining this share (0-1]."
    ),
    conv_rank: int | None = typer.Option(None, "--conv-rank", help="Rank for 3x3 conv modules."),
    precision: str = LORA_PRECISION,
    overwrite: bool = OVERWRITE,
    debug: bool = DEBUG,
) -> None:
    """SVD each module down to a lower rank and report how much of the LoRA was kept."""
    setup_logging(debug)

    @_as_stage("resize")
    def action():
        chosen = _precision(precision)  # before torch is imported
        from .report import kept_table
        from .resize import run_resize

        kept = run_resize(file, out, rank, energy, conv_rank, chosen, overwrite)
        out_console.print(kept_table(kept, f"Resized {escape(file.name)}"))
        _wrote(out, "Resized LoRA saved")

    guarded(action, debug)


@lora_app.command("merge-loras")
def merge_loras(
    loras: list[str] = typer.Argument(..., help="LoRA files, each FILE or FILE:WEIGHT (default weight 1)."),
    out: Path = OUT,
    rank: int | None = typer.Option(
        None, "--rank", help="SVD the sum to this rank (default: exact concatenation of all ranks)."
    ),
    energy: float | None = typer.Option(None, "--energy", help="Instead of --rank: keep this share (0-1]."),
    precision: str = LORA_PRECISION,
    overwrite: bool = OVERWRITE,
    debug: bool = DEBUG,
) -> None:
    """Combine weighted LoRAs into one LoRA: exactly (ranks add up) or by SVD to a chosen rank."""
    setup_logging(debug)

    @_as_stage("merge-loras")
    def action():
        chosen = _precision(precision)  # argument mistakes before torch is imported: a sentence at once
        for spec in loras:
            parse_weighted(spec)
        from .merge_loras import run_merge_loras
        from .report import kept_table

        kept = run_merge_loras(loras, out, rank, energy, chosen, overwrite)
        if kept:
            out_console.print(kept_table(kept, "SVD of the merged LoRA"))
        _wrote(out, "Merged LoRA saved")

    guarded(action, debug)


@lora_app.command()
def merge(
    base: str = typer.Argument(
        ..., help="Base checkpoint: single-file .safetensors, diffusers folder, or an LLM folder / hub id."
    ),
    loras: list[str] = typer.Argument(
        ..., help="LoRA files, each FILE or FILE:WEIGHT (default weight 1), or one PEFT adapter folder."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output .safetensors for a single-file base, a folder for a diffusers one or an LLM.",
    ),
    precision: str = typer.Option("keep", "--precision", help="keep (as the base), fp16, bf16 or float."),
    overwrite: bool = OVERWRITE,
    debug: bool = DEBUG,
) -> None:
    """Bake LoRAs into a base checkpoint, written in the base's layout (single file in, single file out)."""
    setup_logging(debug)

    @_as_stage("merge")
    def action():
        if not (len(loras) == 1 and Path(loras[0]).is_dir()):  # LoRA files, not an LLM's adapter folder:
            _precision(precision, MERGE_PRECISIONS)  # argument mistakes and a missing base are a sentence
            for spec in loras:  # before torch is imported
                parse_weighted(spec)
            locate(base)
        from .llm_adapter import is_adapter_folder, run_merge_adapter
        from .merge import run_merge

        if len(loras) == 1 and is_adapter_folder(Path(loras[0])):
            run_merge_adapter(Path(loras[0]), base, out, overwrite)
            _wrote(out, "Merged model saved (transformers folder)")
            return
        chosen = _precision(precision, MERGE_PRECISIONS)
        layout = run_merge(base, loras, out, None if chosen == "keep" else chosen, overwrite)
        _wrote(out, f"Merged checkpoint saved ({layout.replace('_', '-')})")

    guarded(action, debug)


@lora_app.command()
def extract(
    tuned: str = typer.Argument(..., help="The fine-tuned checkpoint (single file or diffusers folder)."),
    base: str = typer.Argument(..., help="The base it was fine-tuned from."),
    out: Path = OUT,
    rank: int = typer.Option(16, "--rank", help="LoRA rank for attention/feed-forward/proj modules."),
    conv_rank: int | None = typer.Option(None, "--conv-rank", help="Also extract 3x3 convs (LoCon)."),
    min_diff: float = typer.Option(1e-6, "--min-diff", help="Skip modules whose weights differ less."),
    precision: str = typer.Option("fp16", "--precision", help="fp16, bf16 or float."),
    overwrite: bool = OVERWRITE,
    debug: bool = DEBUG,
) -> None:
    """Extract a LoRA (fine-tuned minus base, SVD per module) and report how much of the change it keeps."""
    setup_logging(debug)

    @_as_stage("extract")
    def action():
        chosen = _precision(precision, ("fp16", "bf16", "float"))  # these before torch is imported
        locate(tuned)
        locate(base)
        from .extract import run_extract
        from .report import kept_table

        kept = run_extract(tuned, base, out, rank, conv_rank, chosen, overwrite, min_diff)
        out_console.print(kept_table(kept, "Extracted LoRA"))
        _wrote(out, "Extracted LoRA saved")

    guarded(action, debug)


@lora_app.command()
def export(
    adapter: Path = typer.Argument(..., help="A PEFT adapter folder (what LLM training writes)."),
    out: Path = typer.Option(..., "--out", "-o", help="The exported adapter folder."),
    overwrite: bool = OVERWRITE,
    debug: bool = DEBUG,
) -> None:
    """Copy an LLM adapter for every server: rsLoRA's sqrt(r) folded into lora_alpha (llama.cpp reads no
    use_rslora); other adapters are copied as they are."""
    setup_logging(debug)

    def action():
        from .llm_adapter import run_export_adapter

        _wrote(run_export_adapter(adapter, out, overwrite), "Exported adapter saved")

    guarded(action, debug)
