"""The one timing mark both sides share: the end of every optimiser step.

`torch.optim.Optimizer`'s global step post-hook fires after `optimizer.step()` of any optimiser in the
process, whoever calls it (the bare loop, or accelerate's wrapper inside the trainer). Both sides train with
`torch.optim.AdamW` and call it once per step (no gradient accumulation), so the time between two hook calls
is one whole step on either side: data loading + decode + resize, VAE, text encoder, UNet forward and
backward, clipping, the optimiser, and whatever bookkeeping the loop does between steps. Nothing of the
trainer's own classes is wrapped, so it keeps measuring the same thing while the trainer is refactored.

On a GPU each mark first waits for the GPU's queued work (torch.cuda.synchronize), so a mark is the end of
the step's work, not of its launch, on both sides alike; the GPU memory peaks (torch.cuda.max_memory_allocated
and max_memory_reserved) are reset and read at the same marks as the RSS peak.

Each mark notes the wall time and this process's CPU time (all its threads). On a machine shared with other
work, wall time also counts the time the process waited for a core; CPU time counts the work done (plus some
cache and memory-bandwidth interference), so it is the steadier of the two, and CPU/wall shows how much of a
core a run actually had.
"""

from __future__ import annotations

import os
import resource
import time

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from .common import reset_peak, rss_mb, stop_profiler

MB = 2**20


class StepClock:
    """Stamps the end of each optimiser step. Steps 1..warmup are warm-up; the next `steps` are timed. The
    peak-memory mark is reset at the end of the warm-up and read at the end of the last timed step, so the
    memory figure covers exactly the timed steps on both sides."""

    def __init__(self, warmup: int, steps: int):
        if warmup < 1:
            raise ValueError("warmup must be >= 1: the first step has no start mark")
        self.warmup, self.steps = warmup, steps
        self.stamps: list[float] = []
        self.cpu: list[float] = []
        self.split: list[tuple[float, float, int]] = []  # user s, system s, minor page faults
        self.trainable_params = 0
        self.rss_before_mb = self.peak_mb = float("nan")
        self.gpu: dict[str, float] = {}
        self._handle = register_optimizer_step_post_hook(self._on_step)

    def _on_step(self, optimizer, args, kwargs) -> None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        if cuda:
            torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())
        self.cpu.append(time.process_time())
        times = os.times()
        self.split.append((times.user, times.system, resource.getrusage(resource.RUSAGE_SELF).ru_minflt))
        n = len(self.stamps)
        if n == self.warmup:
            self.trainable_params = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
            self.rss_before_mb = rss_mb("VmRSS")
            reset_peak()
            if cuda:  # loading, caches and the warm-up steps; then the peak restarts for the timed steps
                self.gpu["gpu_peak_before_timed_mb"] = torch.cuda.max_memory_allocated() / MB
                self.gpu["gpu_reserved_before_timed_mb"] = torch.cuda.max_memory_reserved() / MB
                self.gpu["gpu_allocated_before_timed_mb"] = torch.cuda.memory_allocated() / MB
                torch.cuda.reset_peak_memory_stats()
        elif n == self.warmup + self.steps:
            self.peak_mb = rss_mb("VmHWM")
            stop_profiler()
            if cuda:
                free, total = torch.cuda.mem_get_info()
                self.gpu["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / MB
                self.gpu["gpu_peak_reserved_mb"] = torch.cuda.max_memory_reserved() / MB
                self.gpu["gpu_device_used_mb"] = (total - free) / MB  # + CUDA context, other processes
                self.gpu["gpu_reserved_end_mb"] = torch.cuda.memory_reserved() / MB  # at the same moment

    def result(self) -> dict:
        self._handle.remove()
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]
        cpu = [b - a for a, b in zip(self.cpu, self.cpu[1:], strict=False)]
        timed = slice(self.warmup - 1, self.warmup - 1 + self.steps)
        first, last = self.warmup - 1, min(len(self.split), self.warmup + self.steps) - 1
        user = system = faults = 0.0
        if last > first:
            user, system, faults = (b - a for a, b in zip(self.split[first], self.split[last], strict=True))
        n = max(1, last - first)
        return {
            "optimizer_steps": len(self.stamps),
            "step_seconds": gaps[timed],  # wall time of the timed steps
            "step_cpu_seconds": cpu[timed],  # CPU time of the process in the same steps
            # where the CPU time went, per timed step: user / kernel (page faults zeroing fresh memory...)
            "cpu_split_per_step": {"user": user / n, "system": system / n, "minor_faults": faults / n},
            "warmup_seconds": gaps[: self.warmup - 1],  # steps 2..warmup (step 1 has no start mark)
            "first_step_end": self.stamps[0] if self.stamps else float("nan"),
            "train_peak_mb": self.peak_mb,
            "rss_before_train_mb": self.rss_before_mb,
            "trainable_params": self.trainable_params,
            **self.gpu,
        }
