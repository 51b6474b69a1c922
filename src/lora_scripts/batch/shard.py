"""Which share of the job this process does: accelerate's rank and world size (one process: rank 0 of 1).
`--processes N` starts N ranks with training's launcher (train/launch.relaunch: accelerate launch)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


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
