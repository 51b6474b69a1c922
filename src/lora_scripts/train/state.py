"""Training-state checkpoints: complete or absent, enough to continue bit-exactly after a crash.

accelerate's save_state writes the whole base model (GBs for SD); a LoRA run only needs its own tensors,
the optimiser, the schedule, the scaler, the RNGs and the position in the data, so this is hand-written.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, TrainingError

log = logging.getLogger(__name__)
STATE_DIR = "state"


@dataclass
class Position:
    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of `epoch` already consumed
    losses: list[float] = field(default_factory=list)


def save_state(
    folder: Path, position: Position, trainer_rng: random.Random, objects: dict, keep: int
) -> Path:
    """Write `folder/state/step-NNNNNN` atomically (temp dir + rename) and prune to the newest `keep`."""
    root = folder / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{position.step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        payload = {name: obj.state_dict() for name, obj in objects.items() if obj is not None}
        payload["rng"] = _rng_state(trainer_rng)
        torch.save(payload, tmp / "training_state.pt")
        (tmp / "position.json").write_text(json.dumps(asdict(position)), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in list_states(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_states(folder: Path) -> list[Path]:
    root = folder / STATE_DIR
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step-*") if (p / "position.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def find_state(resume: str | None, output_dir: Path) -> Path | None:
    """`auto`: the newest complete state in output_dir (none is fine); a path must be a state folder."""
    if not resume:
        return None
    if resume == "auto":
        states = list_states(output_dir)
        return states[-1] if states else None
    path = Path(resume)
    if path.is_dir() and (path / "position.json").is_file():
        return path
    if path.is_dir() and list_states(path):
        return list_states(path)[-1]
    raise ConfigError(
        f"resume: '{resume}' is not a training-state folder (no position.json inside)",
        f"Use resume: auto, or a folder like {output_dir / STATE_DIR / 'step-000100'}",
    )


def load_state(path: Path, trainer_rng: random.Random, objects: dict) -> Position:
    payload = torch.load(path / "training_state.pt", map_location="cpu", weights_only=False)
    for name, obj in objects.items():
        if obj is not None and name in payload:
            obj.load_state_dict(payload[name])
    _set_rng_state(payload["rng"], trainer_rng)
    return Position(**json.loads((path / "position.json").read_text(encoding="utf-8")))


def _rng_state(trainer_rng: random.Random) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "trainer": trainer_rng.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, trainer_rng: random.Random) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    trainer_rng.setstate(state["trainer"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ParamSet:
    """state_dict/load_state_dict over the trainable LoRA parameters, for the training-state file."""

    def __init__(self, params: dict[str, torch.nn.Parameter]):
        self.params = params

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().clone() for n, p in self.params.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state.keys() != self.params.keys():
            raise TrainingError(
                "The saved training state does not match this config's LoRA layout",
                "Resume with the same network settings, or start fresh without resume",
            )
        for name, p in self.params.items():
            p.copy_(state[name])
