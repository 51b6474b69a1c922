#!/usr/bin/env python
"""Seed-compatible entry point: `python auto_label.py --input DIR --output DIR/metadata.csv`.

Same as `lora-scripts label --input DIR --output DIR/metadata.csv`; existing captions are kept.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

try:
    from lora_scripts.cli import app, honour_stop_signals
except ImportError as exc:  # run with a Python that lacks the dependencies
    sys.exit(
        f"Error: {exc.name or 'a dependency'} is not installed. Run `bash scripts/setup.sh`, then use "
        f".venv/bin/python auto_label.py ... (or activate .venv first)."
    )

if __name__ == "__main__":
    honour_stop_signals()
    app(args=["label", *sys.argv[1:]], prog_name="auto_label.py")
