#!/usr/bin/env bash
# The whole job on the built-in demo: tiny model + sample images -> metadata.csv -> LoRA -> images (CPU, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/lora-scripts demo "$@"
