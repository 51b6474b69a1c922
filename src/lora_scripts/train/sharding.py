"""accelerate's sharded data-parallel modes on the chat-LLM route: FSDP (fsdp_version 2; 1 needs
use_orig_params, LoRA and frozen weights share its flat shards) and DeepSpeed
ZeRO-2/3, chosen as accelerate users choose them, `accelerate launch --config_file FILE -m lora_scripts train
...`. The loop prepares model, optimiser and schedule in one call (both need that); this module checks the
run can use them, fills what DeepSpeed's config leaves to the data loader (the loop has none), and gathers the
sharded LoRA tensors so process 0 writes the whole adapter, in the same format as every other run."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import DistributedType

from ..config import Config
from ..errors import ConfigError

SHARDED = (DistributedType.FSDP, DistributedType.DEEPSPEED)


def requested_sharding() -> str | None:
    """The sharded mode `accelerate launch --config_file` asked for (it says so in the environment of every
    process it starts): FSDP, DeepSpeed, or None."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "DeepSpeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    return None


def check_sharding(cfg: Config, cpu: bool) -> None:
    """Before anything is written: a sharded mode only where it can run and save a whole adapter."""
    mode = requested_sharding()
    if mode is None:
        return
    if cfg.llm is None:
        raise ConfigError(
            f"accelerate's {mode} config is for the chat-LLM route; an image LoRA trains the UNet and text "
            "encoder as separate modules with plain data-parallel",
            "Train images with `lora-scripts train --config ... --processes N` (no accelerate config)",
        )
    if cpu:
        # measured with accelerate 1.15: on a CPU its FSDP config is ignored (each process trains alone, or
        # plain DDP with cpu=True) and DeepSpeed runs with every process believing it is process 0 of 1
        why = {
            "FSDP": "it would not shard, and each process would train alone",
            "DeepSpeed": "every process would take itself for process 0 of 1",
        }[mode]
        raise ConfigError(
            f"accelerate runs {mode} only on GPUs: on a CPU {why}",
            "On a CPU train with `lora-scripts train --config ... --processes N` (plain data-parallel, the "
            "same adapter), or run the accelerate config on a machine with NVIDIA GPUs",
        )
    if (cfg.output.save_state and cfg.output.save_steps) or cfg.train.resume:
        raise ConfigError(
            f"save_state and resume cannot be used with {mode}: each process holds a part of the "
            "optimiser's state, and a training state here is one file written by process 0",
            "Set save_state: false and no resume (LoRA checkpoints with save_steps still work), or "
            "train with `lora-scripts train --processes N`",
        )
    if cfg.network.scale_weight_norms:
        raise ConfigError(
            f"scale_weight_norms cannot be used with {mode}: each process holds only a part of each LoRA "
            "module, whose whole update the max-norm measures",
            "Remove scale_weight_norms, or train with `lora-scripts train --processes N`",
        )
    if cfg.sample.sample_prompts:
        raise ConfigError(
            f"sample_prompts cannot be used with {mode}: process 0 alone writes the sample replies, and a "
            "sharded model needs every process for each forward pass",
            "Remove sample_prompts and try the adapter after training with `lora-scripts chat`",
        )
    if cfg.train.gradient_accumulation_steps > 1 and mode == "DeepSpeed":
        raise ConfigError(
            "gradient_accumulation_steps above 1 cannot be used with DeepSpeed here: accelerate steps the "
            "DeepSpeed engine at every backward pass",
            "Set gradient_accumulation_steps: 1 and a larger batch_size, or use an FSDP config",
        )


def is_sharded(acc: Accelerator) -> bool:
    return acc.distributed_type in SHARDED


def fill_deepspeed_batch(acc: Accelerator, batch_size: int) -> None:
    """DeepSpeed's config wants the per-process batch, which accelerate reads from a data loader: the loop
    gives each process its part of the step's batch (rank::world), at most ceil(batch / processes)."""
    plugin = acc.state.deepspeed_plugin if acc.distributed_type == DistributedType.DEEPSPEED else None
    if plugin is None:
        return
    world = dist.get_world_size() if dist.is_initialized() else acc.num_processes  # DeepSpeed's own count
    micro = math.ceil(batch_size / world)
    config = plugin.deepspeed_config
    config["train_micro_batch_size_per_gpu"] = micro
    config["gradient_accumulation_steps"] = 1
    config["train_batch_size"] = micro * world


@contextlib.contextmanager
def whole_params(acc: Accelerator, modules: list[torch.nn.Module]) -> Iterator[None]:
    """Inside: every process holds the whole trainable (LoRA) tensors of `modules`, for reading and
    saving them. ZeRO-3 partitions each tensor (gathered here, the LoRA ones only: small); FSDP 1 keeps
    flat shards (summoned whole); ZeRO-2 and plain data-parallel hold whole tensors; FSDP 2's are DTensors,
    made whole by `whole()` as they are read."""
    if acc.distributed_type == DistributedType.DEEPSPEED and _zero_stage(acc) == 3:
        import deepspeed

        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            yield
        return
    if acc.distributed_type == DistributedType.FSDP and acc.state.fsdp_plugin.fsdp_version == 1:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with contextlib.ExitStack() as stack:
            for m in modules:
                if isinstance(m, FSDP):
                    stack.enter_context(FSDP.summon_full_params(m, writeback=False, with_grads=False))
            yield
        return
    yield


def whole(value, copy: bool = False):
    """A tensor read from a (possibly FSDP 2) module as a plain whole tensor; dataclasses of tensors (a
    layer's LoRA weights) field by field. Every process must call it: a DTensor is gathered from all.
    `copy`: a copy that outlives whole_params (whose gathered tensors are freed when it ends)."""
    if isinstance(value, torch.Tensor):
        full = getattr(value, "full_tensor", None)
        if full is not None:
            return full().detach()
        return value.detach().clone() if copy else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: whole(getattr(value, f.name), copy) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **fields)
    if isinstance(value, dict):
        return {k: whole(v, copy) for k, v in value.items()}
    return value


def _zero_stage(acc: Accelerator) -> int:
    return int(acc.state.deepspeed_plugin.zero_stage or 0)
