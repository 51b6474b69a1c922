#!/usr/bin/env python
"""Seed-compatible entry point: `python generate.py -m base.safetensors -l models/Lora "<lora:x:0.7> text"`.

Same as `lora-scripts generate ...`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

try:
    from lora_scripts.cli import app, honour_stop_signals
except ImportError as exc:  # run with a Python that lacks the dependencies
    sys.exit(
        f"Error: {exc.name or 'a dependency'} is not installed. Run `bash scripts/setup.sh`, then use "
        f".venv/bin/python generate.py ... (or activate .venv first)."
    )

if __name__ == "__main__":
    honour_stop_signals()
    app(args=["generate", *sys.argv[1:]], prog_name="generate.py")
