#!/usr/bin/env bash
# Create .venv in the repo and install lora-scripts with its pinned torch (CPU wheel where no GPU build is cached).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
STAMP=.venv/.lora-scripts-installed
WANT="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "==> Installing dependencies (torch==2.13.0, diffusers, transformers, peft, accelerate, ...)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
  .venv/bin/python -m pip install --quiet -e ".[dev,ui]"  # ui: the web UI and its browser tests
  echo "$WANT" > "$STAMP"
fi
