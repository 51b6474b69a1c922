"""CLI commands `label` and `doctor` (registered on the main app by cli.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

DEBUG = typer.Option(False, "--debug", help="Show full tracebacks and library logs.")


def label(
    input: Path = typer.Option(..., "--input", "-i", help="Folder with the training images."),
    output: Path = typer.Option(
        None, "--output", "-o", help="metadata.csv to write (default: INPUT/metadata.csv)."
    ),
    backend: str = typer.Option(
        "classify",
        "--backend",
        "-b",
        help="classify (ViT labels), caption (BLIP/GIT), tags (WD14 ONNX) or filename (also: folder; "
        "tags from folder and file names, no model).",
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help="Model folder, hub id (HF_ENDPOINT picks a mirror) or modelscope:org/name (default depends on "
        "--backend).",
    ),
    template: str = typer.Option(
        "{label} style", help="classify: prompt template with {label}; filename: for a kohya 10_NAME folder."
    ),
    top_k: int = typer.Option(1, "--top-k", help="classify: labels per image, joined with commas."),
    trigger: str = typer.Option(None, "--trigger", help="Word put in front of every new prompt."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per model call."),
    fmt: str = typer.Option("csv", "--format", help="csv (metadata.csv) or txt (one .txt per image)."),
    caption_extension: str = typer.Option(".txt", "--caption-extension", help="txt: sidecar extension."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Label every image again and replace existing captions."
    ),
    general_threshold: float = typer.Option(0.35, help="tags: minimum score of general tags."),
    character_threshold: float = typer.Option(0.85, help="tags: minimum score of character tags."),
    blacklist: str = typer.Option("", "--blacklist", help="tags: comma-separated tags never written."),
    max_new_tokens: int = typer.Option(40, "--max-new-tokens", help="caption: longest caption in tokens."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    debug: bool = DEBUG,
) -> None:
    """Propose a prompt for every image without one; existing captions are kept unless --overwrite."""
    from ..console import console, guarded, setup_logging

    setup_logging(debug)

    def action():
        from .run import LabelOptions, label_folder

        opts = LabelOptions(
            input=input,
            output=output,
            backend=backend,
            model=model,
            template=template,
            top_k=top_k,
            trigger=trigger,
            batch_size=batch_size,
            format=fmt,
            caption_extension=caption_extension,
            overwrite=overwrite,
            general_threshold=general_threshold,
            character_threshold=character_threshold,
            blacklist=[tag.strip() for tag in blacklist.split(",") if tag.strip()],
            max_new_tokens=max_new_tokens,
            device=device,
        )
        result = label_folder(opts)
        for path in result.written[:1]:
            more = f" and {len(result.written) - 1} more files" if len(result.written) > 1 else ""
            console.print(
                f"[bold green]Wrote[/] {escape(str(path))}{more}: {result.labelled} new, {result.kept} kept"
            )

    guarded(action, debug)


def doctor(
    folder: Path = typer.Argument(..., help="Folder with the training images."),
    resolution: int = typer.Option(512, "--resolution", "-r", help="Training resolution in pixels."),
    metadata: Path = typer.Option(None, "--metadata", help="metadata.csv (default: FOLDER/metadata.csv)."),
    caption_extension: str = typer.Option(".txt", "--caption-extension", help="Sidecar caption extension."),
    trigger: str = typer.Option(None, "--trigger", help="Word every caption should contain."),
    class_tokens: str = typer.Option(
        None,
        "--class-tokens",
        help="As training with class_tokens: the caption of images that have none (else their N_name "
        "folder's name).",
    ),
    bucket_no_upscale: bool = typer.Option(
        False,
        "--bucket-no-upscale",
        help="As training with bucket_no_upscale: small images are not enlarged.",
    ),
    report: Path = typer.Option(
        None, "--report", help="HTML report to write (default: FOLDER/doctor_report.html)."
    ),
    no_report: bool = typer.Option(False, "--no-report", help="Only the terminal summary."),
    lang: str = typer.Option("en", "--lang", help="Language of the HTML report: en or zh (简体中文)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the findings as JSON to this file."),
    model: str = typer.Option(None, "--model", "-m", help="Chat data: count lengths in this LLM's tokens."),
    max_seq_len: int = typer.Option(1024, "--max-seq-len", help="Chat data: the training max_seq_len."),
    dataset_format: str = typer.Option("auto", "--format", help="Chat data: messages, sharegpt, alpaca..."),
    debug: bool = DEBUG,
) -> None:
    """Check a training folder (broken, tiny or duplicate images, missing or long captions, clutter) or chat
    data (.jsonl/.json/.csv: bad rows, duplicates, turn order, conversations over max_seq_len, lengths)."""
    from ..console import console, guarded, setup_logging

    setup_logging(debug)

    def action():
        from ..data.chat import is_chat_data
        from ..doctor import run_doctor
        from ..doctor.html import report_lang

        chosen = report_lang(lang)  # before the checks run: a typo is not found after minutes of work

        if is_chat_data(folder):
            from ..doctor.chat import run_chat_doctor

            chat = run_chat_doctor(folder, dataset_format, None, model, max_seq_len)
            console.print(chat.summary(), highlight=False, markup=False)
            chat.raise_for_errors()
            return
        settings = {
            "train_data_dir": folder,
            "resolution": resolution,
            "metadata_path": metadata,
            "caption_extension": caption_extension,
            "trigger_word": trigger,
            "class_tokens": class_tokens,
            "bucket_no_upscale": bucket_no_upscale,
        }
        result = run_doctor(_data_settings(settings))
        console.print(result.summary(), highlight=False, markup=False)
        if not no_report:
            path = result.write_html(report or folder / "doctor_report.html", chosen)
            console.print(f"Report with thumbnails: {path}", markup=False)
        if json_out:
            result.write_json(json_out)
        result.raise_for_errors()

    guarded(action, debug)


OPTION_OF = {
    "resolution": "--resolution",
    "metadata_path": "--metadata",
    "caption_extension": "--caption-extension",
}


def _data_settings(settings: dict):
    """The training's data settings (DataConfig) that the doctor checks by; a value training would refuse is
    one sentence naming the option."""
    from pydantic import ValidationError

    from ..config.data import DataConfig
    from ..errors import ConfigError

    try:
        return DataConfig(**settings)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        raise ConfigError(
            f"{OPTION_OF.get(key, key)} {settings.get(key)} is not valid: {error['msg']}",
            "Give the value your training config has (resolution: a multiple of 8 from 64 to 4096, e.g. 512)",
        ) from exc


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `lora-scripts` app."""
    app.command("label")(label)
    app.command("doctor")(doctor)
