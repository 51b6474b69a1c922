"""Logging to the terminal (rich) and the one place user errors become a sentence and exit code 2."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from .errors import LoraScriptsError

console = Console(stderr=True, emoji=False)  # `<lora:fire:0.7>` is a tag, not the :fire: emoji
T = TypeVar("T")
# Libraries whose warnings are about their own internals (deprecations, optional backends): hidden unless
# --debug. Warnings from anywhere else, the user's own code included, still show.
NOISY_MODULES = (
    "accelerate",
    "diffusers",
    "huggingface_hub",
    "onnxruntime",
    "peft",
    "PIL",
    "safetensors",
    "tensorboard",
    "timm",
    "torch",
    "torchvision",
    "transformers",
)


def setup_logging(debug: bool = False) -> None:
    level = logging.DEBUG if debug else logging.INFO
    handler = RichHandler(console=console, show_path=debug, show_time=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    libraries = ("diffusers", "transformers", "accelerate", "PIL", "urllib3", "httpx", "huggingface_hub")
    for noisy in (*libraries, "bitsandbytes"):  # bitsandbytes: "no `kernels` package" on each import
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        quiet_library_warnings()
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")


def quiet_library_warnings() -> None:
    """Ignore the noisy libraries' warnings, and library deprecations that point at our call sites."""
    warnings.filterwarnings("ignore", module=rf"({'|'.join(NOISY_MODULES)})(\.|$)")
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"lora_scripts(\.|$)")


def guarded(action: Callable[[], T], debug: bool) -> T:
    """Run a command; a user error prints one line and exits 2, a bug says how to get the details."""
    try:
        return action()
    except LoraScriptsError as err:
        if debug:
            raise
        console.print(f"[bold red]Error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        _hint_in_chinese(str(err))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        console.print("[yellow]Stopped by the user.[/]")
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: say so, keep it short
        if debug:
            raise
        console.print(
            f"[bold red]Unexpected error:[/] {type(exc).__name__}: {escape(str(exc))}. "
            "Run again with --debug for the full traceback and report it.",
            soft_wrap=True,
        )
        sys.exit(1)


def _hint_in_chinese(message: str) -> None:
    """Under the English sentence (it names the file or key), what to do in Chinese for a Chinese user."""
    from .errors_zh import hint_zh
    from .language import default_lang

    hint = hint_zh(message) if default_lang() == "zh" else None
    if hint:
        console.print(f"[bold]怎么办：[/]{escape(hint)}", highlight=False, soft_wrap=True)
