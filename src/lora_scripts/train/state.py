"""Training-state checkpoints: complete or absent, enough to continue bit-exactly after a crash.

accelerate's save_state writes the whole base model (GBs for SD); a LoRA run only needs its own tensors,
the optimiser, the schedule, the scaler, the RNGs and the position in the data, so this is hand-written.

The state file holds only tensors and plain containers (RNG states included), so it is read with
torch.load(weights_only=True): a state folder cannot run code, whoever put it there.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, TrainingError

log = logging.getLogger(__name__)
STATE_DIR = "state"
STATE_FILE = "training_state.pt"
POSITION_FILE = "position.json"
FINGERPRINT_FILE = "fingerprint.json"  # what the run was made from (train/fingerprint.py)
REQUIRED = ("lora", "optimizer", "lr_scheduler", "rng")  # saved by every run; "scaler" only with fp16
RNG_KEYS = ("torch", "python", "numpy", "trainer")
# What reading a damaged, foreign or unsafe state file raises: a cut or corrupt zip (RuntimeError from
# PytorchStreamReader, BadZipFile, EOFError), bytes that are no torch file at all (KeyError from the legacy
# reader), Python objects weights_only refuses (UnpicklingError).
_READ_ERRORS = (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile)
_FRESH = "Delete that folder (or set resume to empty) to start fresh"
_TMP, _TRASH = ".tmp-", ".deleting-"  # a save being written, a state being deleted


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already consumed
    losses: list[float] = field(default_factory=list)


class StateMismatch(TrainingError):
    """The state does not fit this run's objects; `detail` completes "The training state in X ..."."""

    def __init__(self, detail: str, hint: str):
        self.detail = detail
        super().__init__(f"The training state {detail}", hint)


def save_state(
    folder: Path,
    position: Position,
    trainer_rng: random.Random,
    objects: dict,
    keep: int,
    fingerprint: dict[str, str] | None = None,
) -> Path:
    """Write `folder/state/step-NNNNNN` atomically (temp dir + rename) and prune to the newest `keep`.
    A folder leaves the step-* names by one rename before it is deleted, so a kill mid-delete never
    leaves a half state behind a complete-looking name; what such a kill leaves is swept on the next save."""
    root = folder / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    sweep(root)
    final = root / f"step-{position.step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=_TMP, dir=root))
    try:
        payload = {name: obj.state_dict() for name, obj in objects.items() if obj is not None}
        payload["rng"] = _rng_state(trainer_rng)
        torch.save(payload, tmp / STATE_FILE)
        if fingerprint is not None:
            (tmp / FINGERPRINT_FILE).write_text(json.dumps(fingerprint, indent=1), encoding="utf-8")
        (tmp / POSITION_FILE).write_text(json.dumps(asdict(position)), encoding="utf-8")
        _remove(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_states(folder)[:-keep] if keep > 0 else []:
        _remove(old)
    return final


def _remove(path: Path) -> None:
    if not path.exists():
        return
    trash = path.with_name(_TRASH + path.name)
    shutil.rmtree(trash, ignore_errors=True)  # left by a kill while this name was deleted before
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def sweep(root: Path) -> None:
    """Leftovers of a killed run: unfinished saves, half-deleted states, step folders without a position."""
    for path in root.iterdir():
        name = path.name
        leftover = name.startswith((_TMP, _TRASH)) or (
            name.startswith("step-") and not (path / POSITION_FILE).is_file()
        )
        if leftover and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def list_states(folder: Path) -> list[Path]:
    root = folder / STATE_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / POSITION_FILE).is_file() and p.name[5:].isdigit()]
    return sorted(done, key=lambda p: int(p.name[5:]))


def find_state(
    resume: str | None, output_dir: Path, fingerprint: dict[str, str] | None = None
) -> Path | None:
    """`auto`: the newest usable state in output_dir made from the same data, model and settings (none is
    fine; a damaged newest one falls back to the one before, with a warning; states of another run are
    refused, naming what differs). A path must be a usable state folder, or a folder holding states."""
    if not resume:
        return None
    if resume == "auto":
        states = list_states(output_dir)
        if fingerprint is not None and states:
            states = _same_run(states, fingerprint)
        return newest_usable(states)
    path = Path(resume)
    if path.is_dir() and (path / POSITION_FILE).is_file():
        read_state(path)  # refused now, with a sentence, rather than after the model has loaded
        return path
    holder = path.parent if path.name == STATE_DIR else path  # output/x/state works like output/x
    if path.is_dir() and list_states(holder):
        return newest_usable(list_states(holder))
    raise ConfigError(
        f"resume: '{resume}' is not a training-state folder (no {POSITION_FILE} inside)",
        f"Use resume: auto, or a folder like {output_dir / STATE_DIR / 'step-000100'}",
    )


def state_fingerprint(path: Path) -> dict[str, str]:
    try:
        data = json.loads((path / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _same_run(states: list[Path], fingerprint: dict[str, str]) -> list[Path]:
    from .fingerprint import differences

    same = [p for p in states if not differences(state_fingerprint(p), fingerprint)]
    if same:
        return same
    newest = states[-1]
    saved = state_fingerprint(newest)
    if not saved:
        raise ConfigError(
            f"resume: auto found training states in '{newest.parent}' that were not made by this run "
            f"(no {FINGERPRINT_FILE}: another version of lora-scripts, or copied from elsewhere)",
            "Start fresh (remove `resume`, or choose another output_dir); give a state folder in resume "
            "to continue from it anyway",
        )
    diff = differences(saved, fingerprint)
    raise ConfigError(
        f"resume: auto found training states in '{newest.parent}' from another run (newest: {newest.name}); "
        f"they differ in {'; '.join(diff[:4])}{' ...' if len(diff) > 4 else ''}",
        "Start this run fresh (remove `resume`, or choose another output_dir), or put the settings back to "
        "continue that run",
    )


def newest_usable(states: list[Path]) -> Path | None:
    """The newest of `states` that reads completely; skipped newer ones are named in a warning."""
    if not states:
        return None
    failures: list[tuple[Path, TrainingError]] = []
    for path in reversed(states):
        try:
            read_state(path)
        except TrainingError as err:
            failures.append((path, err))
            continue
        if failures:
            log.warning(
                "Cannot resume from the newest training state %s (%s); resuming from the previous "
                "complete one, %s",
                failures[0][0],
                failures[0][1].what,
                path,
            )
        return path
    newest, err = failures[0]
    n = len(failures) - 1
    older = f" (and the {n} older one{'s' if n > 1 else ''} cannot be used either)" if n else ""
    raise TrainingError(
        f"No usable training state to resume from in '{newest.parent}': {err.what}{older}", _FRESH
    )


def read_state(path: Path) -> tuple[dict, Position]:
    """The state file (tensors and plain containers only) and the position, checked for completeness.
    Anything unreadable, unsafe or incomplete is a TrainingError naming the file and what is wrong."""
    file = path / STATE_FILE
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise TrainingError(
            f"The training state '{file}' holds Python objects other than tensors, so it was not loaded "
            "(loading it could run code; states written by lora-scripts before this check look like this "
            "too)",
            _FRESH,
        ) from exc
    except _READ_ERRORS as exc:
        raise TrainingError(
            f"The training state '{file}' cannot be read; it is missing, cut short or damaged "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            _FRESH,
        ) from exc
    if not isinstance(payload, dict):
        raise TrainingError(f"The training state '{file}' is not a lora-scripts training state", _FRESH)
    missing = [key for key in REQUIRED if key not in payload]
    rng = payload.get("rng")
    if isinstance(rng, dict):
        missing += [f"rng.{key}" for key in RNG_KEYS if key not in rng]
    if missing:
        raise TrainingError(
            f"The training state '{file}' is incomplete: it has no {', '.join(repr(k) for k in missing)}",
            _FRESH,
        )
    return payload, _read_position(path / POSITION_FILE)


def _read_position(file: Path) -> Position:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainingError(f"The training position '{file}' cannot be read ({exc})", _FRESH) from exc
    names = [f.name for f in fields(Position)]
    if not isinstance(data, dict) or any(name not in data for name in names):
        raise TrainingError(
            f"The training position '{file}' is incomplete: it needs {', '.join(names)}", _FRESH
        )
    return Position(**{name: data[name] for name in names})


def load_state(path: Path, trainer_rng: random.Random, objects: dict) -> Position:
    payload, position = read_state(path)
    try:
        for name, obj in objects.items():
            if obj is None:
                continue
            if name not in payload:
                log.warning("The training state %s has no %s; it starts fresh", path, name)
                continue
            if name == "optimizer":
                _check_optimizer(payload[name], obj.state_dict())
            obj.load_state_dict(payload[name])
    except StateMismatch as err:
        raise TrainingError(f"The training state in '{path}' {err.detail}", err.hint) from err
    try:
        _set_rng_state(payload["rng"], trainer_rng)
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError) as exc:
        raise TrainingError(
            f"The random-number state in '{path / STATE_FILE}' is damaged ({type(exc).__name__}: {exc})",
            _FRESH,
        ) from exc
    return position


def _check_optimizer(saved: dict, current: dict) -> None:
    """Settings of the saved optimiser's groups must be this optimiser's (adamw's betas vs sgd's momentum):
    torch would load either into the other and fail at the first step."""
    saved_keys = {k for group in saved.get("param_groups", []) for k in group} - {"params", "initial_lr"}
    current_keys = {k for group in current["param_groups"] for k in group} - {"params", "initial_lr"}
    if saved_keys != current_keys:
        raise StateMismatch(
            f"was made with another optimizer (settings {', '.join(sorted(saved_keys - current_keys))}) "
            f"than this config's (settings {', '.join(sorted(current_keys - saved_keys))})",
            "Resume with the optimizer the run started with, or start fresh without resume",
        )


def _rng_state(trainer_rng: random.Random) -> dict:
    """Every RNG as tensors and plain lists/ints/floats (torch.load(weights_only=True) reads them)."""
    state = {
        "torch": torch.get_rng_state(),
        "python": _plain_random(random.getstate()),
        "numpy": _plain_numpy(np.random.get_state(legacy=False)),
        "trainer": _plain_random(trainer_rng.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, trainer_rng: random.Random) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_random_tuple(state["python"]))
    np.random.set_state(state["numpy"])
    trainer_rng.setstate(_random_tuple(state["trainer"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_random(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def _random_tuple(state: list) -> tuple:
    version, internal, gauss_next = state
    return (version, tuple(internal), gauss_next)


def _plain_numpy(state: dict) -> dict:
    return {
        "bit_generator": str(state["bit_generator"]),
        "state": {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])},
        "has_gauss": int(state["has_gauss"]),
        "gauss": float(state["gauss"]),
    }


class ParamSet:
    """state_dict/load_state_dict over the trainable LoRA parameters, for the training-state file."""

    def __init__(self, params: dict[str, torch.nn.Parameter]):
        self.params = params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        _check_layout(state, self.params)
        for name, p in self.params.items():
            p.copy_(state[name])


def _check_layout(state: dict, params: dict[str, torch.nn.Parameter]) -> None:
    """Same LoRA layers with the same shapes, else a StateMismatch naming the setting that differs."""
    if not isinstance(state, dict):
        raise StateMismatch("has no LoRA weights table", _FRESH)
    if state.keys() != params.keys():
        only_saved = sorted(set(state) - set(params))
        only_now = sorted(set(params) - set(state))
        example = (
            f"e.g. '{only_saved[0]}' is only in the state"
            if only_saved
            else f"e.g. '{only_now[0]}' is only in this run"
        )
        raise StateMismatch(
            f"has other LoRA layers than this config ({len(only_saved)} only in the state, "
            f"{len(only_now)} only in this run; {example})",
            "Resume with the network settings it was made with (train_text_encoder, conv_rank, "
            "base model), or start fresh without resume",
        )
    for name, p in params.items():
        saved = state[name]
        if not isinstance(saved, torch.Tensor):
            raise StateMismatch(f"has no tensor for '{name}'", _FRESH)
        if saved.shape != p.shape:
            raise _shape_mismatch(name, tuple(saved.shape), tuple(p.shape), params)


def _shape_mismatch(name: str, saved: tuple, now: tuple, params: dict) -> StateMismatch:
    """peft's lora_A is (rank, in, ...), lora_B (out, rank, ...): a difference only there is a rank change;
    lora_A with a 3x3 kernel belongs to a conv layer, whose rank is conv_rank."""
    part = next((p for p in (".lora_A.", ".lora_B.") if p in name), None)
    dim = 0 if part == ".lora_A." else 1
    rank_only = part is not None and len(saved) == len(now) > dim
    rank_only = rank_only and saved[:dim] + saved[dim + 1 :] == now[:dim] + now[dim + 1 :]
    if not rank_only:
        return StateMismatch(
            f"has '{name}' with shape {saved}, but this run's is {now}",
            "Resume with the base model and network settings it was made with, or start fresh without resume",
        )
    lora_a = params.get(name.replace(".lora_B.", ".lora_A."))
    kernel = tuple(lora_a.shape[2:]) if lora_a is not None else ()
    key = "conv_rank" if kernel not in ((), (1, 1)) else "lora_rank"
    return StateMismatch(
        f"was made with LoRA rank {saved[dim]} ('{name}' has shape {saved}) but this config has {key} "
        f"{now[dim]} (shape {now})",
        f"Resume with {key} {saved[dim]}, or start fresh without resume",
    )
