"""CLI commands of `label` (registered on the main app by cli.py)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `lora-scripts` app."""
