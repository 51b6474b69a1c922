#!/usr/bin/env python
"""Seed-compatible entry point: `python train.py --config configs/my_lora_config.yaml`.

Same as `lora-scripts train --config ...`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

try:
    from lora_scripts.cli import app, honour_stop_signals, quiet_exit_on_stop_signals
except ImportError as exc:  # run with a Python that lacks the dependencies
    sys.exit(
        f"Error: {exc.name or 'a dependency'} is not installed. Run `bash scripts/setup.sh`, then use "
        f".venv/bin/python train.py ... (or activate .venv first)."
    )

if __name__ == "__main__":
    honour_stop_signals()
    try:
        app(args=["train", *sys.argv[1:]], prog_name="train.py")
    finally:
        quiet_exit_on_stop_signals()
