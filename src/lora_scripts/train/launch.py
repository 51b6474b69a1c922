"""`lora-scripts train --processes N`: the same command again on N processes, started by accelerate's own
launcher (torchrun underneath; gloo on a CPU, NCCL on GPUs), so that it is exactly what
`accelerate launch -m lora_scripts train ...` does."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from ..errors import ConfigError

LAUNCHED = "LORA_SCRIPTS_LAUNCHED"  # set in the environment of the processes `relaunch` starts


def free_port() -> int:
    """A port for the processes' rendezvous: accelerate's default 29500 is taken by a second run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_processes(processes: int, gpus: int) -> None:
    if processes < 1:
        raise ConfigError(f"--processes is {processes}", "Give 1 or more (one process per GPU)")
    if gpus and processes > gpus:
        raise ConfigError(
            f"--processes {processes} asks for more processes than the {gpus} GPU(s) this machine has",
            f"Use --processes {gpus} or fewer (one process per GPU)",
        )


def check_accelerate_config(config_file: Path | None) -> None:
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(
            f"--accelerate-config '{config_file}' is not a file",
            "Give the YAML that `accelerate config` writes (e.g. an FSDP or DeepSpeed config)",
        )


def launch_args(processes: int | None, args: list[str], config_file: Path | None = None) -> list[str]:
    """accelerate launch's arguments for -m lora_scripts <args>. --multi_gpu is accelerate's switch for
    data-parallel on one machine; without a GPU it runs the processes on the CPU with the gloo backend. An
    accelerate config file (FSDP, DeepSpeed) chooses the mode instead; a given `processes` (the command's
    --processes, 1 included) still says how many, as `accelerate launch --num_processes N --config_file F`
    does; None: the file's num_processes."""
    mode = ["--config_file", str(config_file)] if config_file else ["--multi_gpu", "--num_machines", "1"]
    if processes is None and not config_file:
        processes = 1
    count = [] if processes is None else ["--num_processes", str(processes)]
    return [
        *mode,
        *count,
        "--main_process_port",
        str(free_port()),
        "--mixed_precision",
        "no",  # the config's mixed_precision decides (train/run.make_accelerator)
        "--dynamo_backend",
        "no",
        "-m",
        "lora_scripts",
        *args,
    ]


def relaunch(processes: int | None, args: list[str], config_file: Path | None = None) -> int:
    """Run `lora-scripts <args>` on `processes` processes with accelerate's launcher, in this process so that
    a failed process is its own error sentence and an exit code, not the launcher's traceback. None (no
    --processes given): the config file's num_processes."""
    import torch
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if processes is not None:
        check_processes(processes, torch.cuda.device_count())
    check_accelerate_config(config_file)
    launch = launch_command_parser().parse_args(launch_args(processes, args, config_file))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ[LAUNCHED] = "1"  # the processes' config notes: this command has said them once already
    try:
        launch_command(launch)
    except ChildFailedError as exc:  # each process has said what went wrong
        return next((f.exitcode for f in exc.failures.values() if f.exitcode > 0), 1)
    except (KeyboardInterrupt, SignalException):  # Ctrl-C, or SIGTERM (the web UI's Stop): the launcher has
        return 130  # passed it on to every process, which saved and stopped after one same step
    finally:
        os.environ.pop(LAUNCHED, None)
    return 0
