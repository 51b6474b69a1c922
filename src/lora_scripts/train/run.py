"""Everything around the loop: check inputs before writing anything, set up logging and accelerate, train."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from logging.handlers import MemoryHandler
from pathlib import Path

from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed

from ..config import Config, DataConfig, OutputConfig, TrainConfig
from ..data import DatasetIndex, scan_dataset
from ..doctor.language import chinese_prompt_warning
from ..errors import ConfigError, OutputError
from ..models.detect import locate
from ..models.registry import load_model, model_family
from ..save.atomic import nearest_existing, probe_writable
from .family_defaults import with_family_defaults
from .init_lora import check_init_lora
from .lock import output_lock, remove_stale_temp_files
from .loop import Trainer, TrainResult
from .owner import check_owner, claim
from .report import write_report
from .sharding import check_sharding
from .state import find_state
from .validation import split_validation
from .versions import as_new_version

log = logging.getLogger(__name__)
MIN_FREE_BYTES = 512 * 2**20  # a few LoRA files + training states of a rank-128 SD LoRA
SAID_WHILE_SCANNING = {"repeats folder"}  # doctor findings whose sentence the dataset scan has just logged


def check_inputs(cfg: Config) -> DatasetIndex:
    """Every check that can fail on user input, run before output_dir is touched."""
    # cheap existence check first; loading the model proves the rest before anything is written
    # the family the run trains (model_family when forced, else detected from the header only), as
    # with_family_defaults reads it: init_lora is checked against that one
    family = model_family(locate(cfg.model.base_model, cfg.model.allow_pickle), cfg.model)
    index = scan_dataset(cfg.data)
    check_dataset(cfg.data)
    if (line := chinese_prompt_warning(cfg.sample.sample_prompts)) is not None:
        log.warning("%s", line)
    if cfg.network.init_lora:
        check_init_lora(cfg.network, base_family=family.info.name)
    check_output_outside_data(cfg.output.output_dir, cfg.data.train_data_dir)
    if cfg.train.resume and cfg.train.resume != "auto":
        find_state(cfg.train.resume, cfg.output.output_dir)
    final_path(cfg.output)
    return index


def prepare_data(cfg: Config):
    """(training set, held-out items) of the config's route, after every pre-flight check."""
    if cfg.llm is not None:
        from .chat_inputs import check_chat_inputs

        return check_chat_inputs(cfg, lambda out: final_path(out, ""))
    return split_validation(check_inputs(cfg), cfg.data)


def run_header() -> str:
    """The first line of each run in train.log: which version, which command, when."""
    from .. import __version__

    command = " ".join(shlex.quote(a) for a in sys.argv) or "(in-process)"
    return f"=== lora-scripts {__version__} run at {time.strftime('%Y-%m-%d %H:%M:%S')}: {command} ==="


def device_note(tr: TrainConfig) -> str:
    device = resolve_device(tr)
    if not device.cpu:
        return (
            "Training on the GPU; the run measures its speed on the first steps and says how long it takes."
        )
    return (
        "No GPU: training runs on the CPU, many times slower than on a GPU. The run measures its speed on "
        "the first steps and says how long it will take; a real LoRA needs an NVIDIA GPU."
    )


def will_write(cfg: Config) -> str:
    """The file this run writes and the exact tag to type in WebUI / ComfyUI prompts."""
    if cfg.llm is not None:
        return (
            f"Will write the PEFT adapter folder {cfg.output.output_dir / cfg.output.name()} (peft, vLLM "
            "--lora-modules, TGI, llama.cpp's convert_lora_to_gguf.py)"
        )
    path = cfg.output.output_dir / f"{cfg.output.name()}.safetensors"
    return f"Will write {path}; in WebUI/ComfyUI prompts use <lora:{cfg.output.name()}:0.7>"


def check_output_outside_data(output_dir: Path, data_dir: Path) -> None:
    """Samples and loss.png written among the training images would be trained on by the next run."""
    out, data = output_dir.expanduser().resolve(), data_dir.expanduser().resolve()
    if out == data or data in out.parents:
        raise ConfigError(
            f"output_dir '{output_dir}' is inside train_data_dir '{data_dir}': samples and reports written "
            "there would be trained on as images by the next run",
            "Choose an output_dir outside the training images, e.g. output/my_lora",
        )


def check_dataset(data: DataConfig) -> None:
    """The dataset doctor, before training: errors stop the run unless `doctor: warn`."""
    if data.doctor == "off":
        return
    from ..doctor import run_doctor

    report = run_doctor(data)
    said = {f.message for f in report.findings if f.kind in SAID_WHILE_SCANNING}
    for line in report.errors + report.warnings:
        if line not in said:
            log.warning("doctor: %s", line)
    if data.doctor == "error":
        report.raise_for_errors(
            "Fix them (details: lora-scripts doctor DIR), or set doctor: warn to train anyway"
        )


def final_path(out: OutputConfig, suffix: str = ".safetensors") -> Path:
    """The final adapter (file, or folder with suffix ""), checked: not there unless overwrite, writable."""
    path = out.output_dir / f"{out.name()}{suffix}"
    if path.exists() and not out.overwrite:
        raise OutputError(
            f"'{path}' already exists and would be overwritten",
            "Move the old file, train under a new output_name in a folder of its own (output_dir), or set "
            "overwrite: true",
        )
    check_owner(out)
    parent = nearest_existing(out.output_dir)
    try:
        probe_writable(out.output_dir)
    except OSError as exc:
        raise OutputError(
            f"Output folder '{out.output_dir}' cannot be created or written ({exc.strerror or exc})",
            "Choose another output_dir",
        ) from exc
    free = shutil.disk_usage(parent).free
    if free < MIN_FREE_BYTES:
        raise OutputError(
            f"Only {free // 2**20} MB free on the disk of '{out.output_dir}'; LoRA files and training states "
            f"need at least {MIN_FREE_BYTES // 2**20} MB",
            "Free some space or choose another output_dir",
        )
    return path


def run_training(cfg: Config) -> TrainResult:
    ours = logging.getLogger("lora_scripts")
    logging.raiseExceptions = False  # a log line that cannot be written (full disk): no traceback
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)
    # Nothing is written before the pre-flight checks pass, yet train.log must hold what they said
    # (doctor warnings, the data summary): keep those records in memory and replay them into the file.
    early = MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
    early.setLevel(logging.INFO)
    ours.addHandler(early)
    log.info(run_header())
    handler = None
    try:
        cfg = with_family_defaults(as_new_version(cfg))
        index, held_out = prepare_data(cfg)
        log.info("%s", will_write(cfg))
        if held_out:
            log.info("Held out for validation: %d items (not trained on)", len(held_out))
        device = resolve_device(cfg.train)
        check_sharding(cfg, device.cpu)  # accelerate launch --config_file with FSDP / DeepSpeed
        log.info("%s", index.summary())
        started = time.time()
        set_threads(cfg.train)
        model = load_model(cfg.model)
        loaded = time.time()
        out = cfg.output.output_dir
        out.mkdir(parents=True, exist_ok=True)
        main = is_main_process()
        # with --processes N, process 0 holds the output folder and writes train.log for all of them
        with output_lock(out) if main else contextlib.nullcontext():
            if main:
                remove_stale_temp_files(out)
                claim(cfg.output)
                handler = _file_log(out / "train.log")
                early.setTarget(handler)
                early.flush()
                ours.addHandler(handler)
            else:
                ours.setLevel(logging.WARNING)  # one voice on the console: the other processes only warn
            ours.removeHandler(early)
            accelerator = make_accelerator(cfg.train, out, device)
            accelerator.init_trackers("lora-scripts")
            set_seed(cfg.train.seed)
            world = accelerator.num_processes
            log.info(
                "Training on %s, mixed precision %s, %d process%s",
                accelerator.device,
                accelerator.mixed_precision,
                world,
                "" if world == 1 else "es",
            )
            trainer = Trainer(cfg, model, index, accelerator, held_out)
            prepared = time.time()
            timings = {"model loading": loaded - started, "preparation (caches)": prepared - loaded}
            try:
                result = trainer.train()
            except KeyboardInterrupt:
                if trainer.partial is not None and main:  # the report of a stopped run says what was saved
                    write_report(cfg, trainer.partial, timings)
                raise
            if main:
                write_report(cfg, result, timings)
        log.info("Done: %d steps in %.0f s. LoRA: %s", result.steps, result.seconds, result.lora_path)
        return result
    finally:
        ours.removeHandler(early)
        early.close()
        if handler is not None:
            ours.removeHandler(handler)
            handler.close()


@dataclass(frozen=True)
class Device:
    cpu: bool
    mixed_precision: str  # what will really run


def resolve_device(tr: TrainConfig) -> Device:
    """Where to train and in which precision, checked before anything is written."""
    if tr.device == "cuda" and not _has_gpu():
        raise ConfigError("device is 'cuda' but no CUDA GPU is visible", "Set device: auto or cpu")
    cpu = tr.device == "cpu" or (tr.device == "auto" and not _has_gpu())
    precision = tr.mixed_precision
    if cpu and precision == "fp16":
        # CPUs have no fast fp16 kernels: a tiny run measured 0.06 steps/s in fp16 against fp32's speed
        log.warning(
            "mixed_precision fp16 needs a GPU; training on CPU in fp32 instead (recorded in the LoRA)"
        )
        precision = "no"
    return Device(cpu=cpu, mixed_precision=precision)


def set_threads(tr: TrainConfig) -> int:
    """torch's CPU threads: the config's, else OMP_NUM_THREADS, else the cores this process may use
    (torch's default counts every core of the machine, also the ones a container or taskset withholds)."""
    import os

    import torch

    env = os.environ.get("OMP_NUM_THREADS", "")
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = tr.num_threads or (int(env) if env.isdigit() and int(env) > 0 else allowed)
    torch.set_num_threads(threads)
    log.info("CPU threads: %d%s", threads, "" if tr.num_threads else " (set num_threads to change)")
    return threads


def make_accelerator(tr: TrainConfig, out_dir: Path, device: Device | None = None) -> Accelerator:
    device = device or resolve_device(tr)
    # accelerate keeps one global state per process; a second run in the same process (demo, tests, UI)
    # with other precision settings must start from a clean one.
    AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(
        mixed_precision=device.mixed_precision,
        # accumulation is the loop's own (train/loop.py): accelerate's counter would run across epoch ends
        gradient_accumulation_steps=1,
        cpu=device.cpu,
        log_with="tensorboard",
        project_dir=str(out_dir / "logs"),
    )


def is_main_process() -> bool:
    """Process 0 of a data-parallel run (accelerate launch / torchrun set RANK), or a run of one process."""
    return os.environ.get("RANK", "0") == "0"


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _file_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    return handler
