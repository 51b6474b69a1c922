"""LoRA files for the tiny model, made the way each trainer writes them (kohya with LoCon, PEFT/diffusers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from lora_scripts.config import NetworkConfig
from lora_scripts.inject.lora import LoraWeights, inject_text_encoder, inject_unet, read_weights
from lora_scripts.save.kohya import to_kohya


def random_parts(tiny_model, seed: int, scale: float = 0.3) -> dict[str, dict[str, LoraWeights]]:
    """Random LoRA weights (rank 4, alpha 2; LoCon 3x3 convs rank 2) on the tiny model's kohya targets."""
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    inject_unet(pipe.unet, NetworkConfig(lora_rank=4, lora_alpha=2, conv_rank=2, conv_alpha=1))
    inject_text_encoder(pipe.text_encoder, NetworkConfig(lora_rank=4, lora_alpha=2))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in (pipe.unet, pipe.text_encoder):
            for name, p in module.named_parameters():
                if ".lora_A." in name or ".lora_B." in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return {"unet": read_weights(pipe.unet), "te": read_weights(pipe.text_encoder)}


def write_kohya(parts, path: Path, output_name: str | None = None, meta: dict | None = None) -> Path:
    metadata = {"ss_base_model_version": "sd_v1", **(meta or {})}
    if output_name:
        metadata["ss_output_name"] = output_name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_kohya(parts, "float"), str(path), metadata=metadata)
    return path


def write_peft(parts, path: Path) -> Path:
    """diffusers' PEFT layout: `unet.<path>.lora_A.weight`, `text_encoder.<path>...`; no alphas (scale 1)."""
    tensors = {}
    for component, prefix in (("unet", "unet"), ("te", "text_encoder")):
        for module, w in parts[component].items():
            tensors[f"{prefix}.{module}.lora_A.weight"] = w.down.contiguous()
            tensors[f"{prefix}.{module}.lora_B.weight"] = w.up.contiguous()
    save_file(tensors, str(path))
    return path


@pytest.fixture(scope="session")
def lora_parts(tiny_model):
    """Two different random LoRAs (unet with LoCon convs + text encoder)."""
    return random_parts(tiny_model, seed=1), random_parts(tiny_model, seed=2)


@pytest.fixture()
def lora_dir(tmp_path, lora_parts) -> Path:
    """A WebUI-style LoRA folder: tech_phone.safetensors, and metal found by its ss_output_name."""
    folder = tmp_path / "Lora"
    write_kohya(lora_parts[0], folder / "tech_phone.safetensors", output_name="tech_phone")
    write_kohya(lora_parts[1], folder / "styles" / "metal_v2-000010.safetensors", output_name="metal")
    return folder


@pytest.fixture()
def lora_writers():
    """The file writers, for tests that make their own LoRA files (kohya, PEFT)."""
    return {"kohya": write_kohya, "peft": write_peft}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """The tiny model's ops are so small that thread hand-offs dominate (20x slower on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the CLI processes too
    yield
    torch.set_num_threads(before)
