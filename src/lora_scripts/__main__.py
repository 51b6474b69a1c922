"""`python -m lora_scripts ...` (what `accelerate launch -m lora_scripts train ...` runs on each process)."""

from .cli import main

main()
