#!/usr/bin/env bash
# Lint and run the whole test suite (tiny models built in code, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests bench auto_label.py generate.py train.py
# One worker per core (-n auto; each torch single-threaded, see tests/conftest.py); a test file stays on one
# worker (--dist loadfile) so its module fixtures (a trained model, a browser) are made once; the longest files
# start first (tests/suite_order.py).
exec .venv/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder --durations=15 "$@"
