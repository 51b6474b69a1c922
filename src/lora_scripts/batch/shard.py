"""Which share of the job this process does: accelerate's rank and world size (one process: rank 0 of 1),
and `--processes N`, which starts N ranks with `accelerate launch` (torchrun underneath; gloo on CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ConfigError


@dataclass
class Shard:
    rank: int
    world: int
    device: str
    state: object | None = None  # accelerate's PartialState when launched with several processes

    def first(self):
        """rank 0 runs the block first, the other ranks after it (reading what it wrote)."""
        from contextlib import nullcontext

        return self.state.main_process_first() if self.state is not None else nullcontext()

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def current_shard(device: str) -> Shard:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(0, 1, device)
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    own = str(state.device) if device != "cpu" else "cpu"  # each rank its own GPU
    return Shard(state.process_index, state.num_processes, own, state)


def launch(job: Path, processes: int, extra: list[str]) -> int:
    """`lora-scripts batch JOB --processes N` = `accelerate launch --num_processes N -m lora_scripts.cli
    batch JOB`; returns the launcher's exit status."""
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}", "Use e.g. --processes 2")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--multi_gpu", "-m", "lora_scripts.cli", "batch", str(job), *extra]
    try:
        return subprocess.run(command).returncode
    except KeyboardInterrupt:  # the ranks got the same Ctrl-C and finish their batch
        return 130
