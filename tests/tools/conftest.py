"""LoRA files with known low-rank deltas on the tiny model's real kohya targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline

from lora_scripts.inject.lora import LoraWeights
from lora_scripts.models.targets import text_targets, unet_targets
from lora_scripts.save.kohya import to_kohya
from lora_scripts.tools.lora_io import write_lora

SD1_META = {
    "ss_network_module": "networks.lora",
    "ss_base_model_version": "sd_v1",
    "ss_output_name": "neon",
    "ss_steps": "120",
    "ss_learning_rate": "0.0001",
    "ss_tag_frequency": json.dumps({"10_neon": {"neon style": 3, "phone": 2, "laptop": 1}}),
    "ss_dataset_dirs": json.dumps({"10_neon": {"n_repeats": 10, "img_count": 3}}),
}


def load_pipe(folder: Path) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def targets(tiny_model) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    """component -> module path -> (kind, weight shape), for the tiny model (with 3x3 convs)."""
    pipe = load_pipe(tiny_model["diffusers"])
    out = {}
    for component, model, found in (
        ("unet", pipe.unet, unet_targets(pipe.unet, with_conv=True)),
        ("te", pipe.text_encoder, text_targets(pipe.text_encoder)),
    ):
        modules = dict(model.named_modules())
        out[component] = {p: (kind, tuple(modules[p].weight.shape)) for p, kind in found.items()}
    return out


def random_lora(
    shape: tuple[int, ...], rank: int, gen: torch.Generator, alpha: float | None = None, scale=0.3
):
    """A LoRA of `rank` for a weight of `shape` ([out, in] or [out, in, kh, kw])."""
    down = torch.randn((rank, *shape[1:]), generator=gen) * scale
    up = torch.randn((shape[0], rank, *([1, 1] if len(shape) == 4 else [])), generator=gen) * scale
    return LoraWeights(down=down, up=up, alpha=float(alpha if alpha is not None else rank))


def make_parts(targets, rank=4, seed=0, conv=True, te=True, every=1, alpha=None) -> dict:
    """{"unet": {path: LoraWeights}, "te": {...}} on every `every`-th target."""
    gen = torch.Generator().manual_seed(seed)
    parts = {}
    for component in ("unet", "te") if te else ("unet",):
        chosen = sorted(targets[component].items())[::every]
        parts[component] = {
            path: random_lora(shape, rank, gen, alpha)
            for path, (kind, shape) in chosen
            if conv or kind != "conv3x3"
        }
    return parts


def save_parts(parts: dict, path: Path, metadata: dict | None = None, precision="float") -> Path:
    return write_lora(to_kohya(parts, precision), path, dict(metadata or SD1_META))


class Factory:
    """What tests use to build LoRAs: fixtures, not imports of conftest."""

    meta = SD1_META
    random_lora = staticmethod(random_lora)
    save = staticmethod(save_parts)
    load_pipe = staticmethod(load_pipe)

    def __init__(self, targets):
        self.targets = targets

    def parts(self, **kwargs) -> dict:
        return make_parts(self.targets, **kwargs)


@pytest.fixture(scope="session")
def loras(targets) -> Factory:
    return Factory(targets)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Small LAPACK calls crawl when OpenMP threads fight over a busy CI box: one thread, here and in
    the CLI processes these tests start."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
