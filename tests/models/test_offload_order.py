"""kohya's low-memory order through the trainer, on the real tiny SDXL modules: the VAE alone on the training
device while latents are cached, the text encoders alone while their outputs are, and only then the UNet
(with whatever the steps still call); samples still draw. Forward hooks record, at each call, which modules
the model reports on the device and where their weights are (on a CPU run both places are the CPU, so the
report carries the test there; on a GPU the weights' devices check it too)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lora_scripts.config import build_config
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training

RECIPE = Path(__file__).parents[2] / "configs" / "sdxl_8gb.yaml"
MODULES = {"vae": "vae", "te1": "text_encoder", "te2": "text_encoder_2", "unet": "unet"}
ENCODERS = ("text_encoder", "text_encoder_2")


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))["diffusers"]


def _recipe(folder, data, out, **extra) -> dict:
    """configs/sdxl_8gb.yaml's switches (precision, checkpointing, caches, optimiser, batch 1, UNet only),
    on the tiny SDXL at 64 px for two steps with a sample at each."""
    config = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    config.update(
        base_model=str(folder),
        train_data_dir=str(data),
        output_dir=str(out),
        resolution=64,
        max_train_steps=2,
        gradient_accumulation_steps=1,
        lr_warmup_steps=0,
        save_steps=1000,
        sample_every_n_steps=1,
        sample_steps=2,
        device="cpu",
        doctor="off",
        **extra,
    )
    return config


def _run_recording(config: dict):
    """Train; for every call of the VAE's encoder, each text encoder and the UNet: (who, the modules the
    model reports on its device, the modules whose weights are on that device)."""
    calls, kept, real = [], {}, run_module.Trainer

    class Recording(real):
        def __init__(self, cfg, model, *args, **kwargs):
            kept["model"] = model
            targets = {"vae": model.vae.encoder, **{n: getattr(model, n) for n in (*ENCODERS, "unet")}}
            for who, module in targets.items():
                module.register_forward_pre_hook(lambda *_, who=who: calls.append((who, *_where(model))))
            super().__init__(cfg, model, *args, **kwargs)
            calls.append(("set up", set(), set()))  # what came before: the caches (no batch-size probe)

    run_module.Trainer = Recording
    try:
        result = run_training(build_config(config))
    finally:
        run_module.Trainer = real
    return result, calls, kept["model"]


def _where(model) -> tuple[set[str], set[str]]:
    reported = set(model.resident)
    if model.device is None or model.device.type == "cpu":  # parked and resident weights: both on the CPU
        return reported, reported
    on = {n for n in MODULES.values() if {p.device for p in getattr(model, n).parameters()} == {model.device}}
    return reported, on


def _caching(calls, who):
    """The calls of `who` while the trainer was set up: those that filled the caches."""
    set_up = next(i for i, call in enumerate(calls) if call[0] == "set up")
    return [call for call in calls[:set_up] if call[0] == who]


@pytest.mark.parametrize(
    ("extra", "training_set"),
    [
        ({}, {"unet"}),  # the recipe: both caches, so only the UNet stays for the steps
        ({"train_text_encoder": True}, {"unet", *ENCODERS}),  # trained encoders: not cached, stay resident
    ],
)
def test_each_cache_fills_with_only_its_encoder_on_the_device(
    sdxl_folder, sample_data, tmp_path, extra, training_set
):
    config = _recipe(sdxl_folder, sample_data, tmp_path / "out", **extra)
    result, calls, model = _run_recording(config)
    vae_calls = _caching(calls, "vae")
    assert vae_calls and all(reported == on == {"vae"} for _, reported, on in vae_calls)
    te_calls = _caching(calls, "text_encoder") + _caching(calls, "text_encoder_2")
    if "text_encoder" in training_set:  # not cached: the encoders run in the steps only
        assert not te_calls
    else:
        assert te_calls and all(reported == on == set(ENCODERS) for _, reported, on in te_calls)
    first_step = next(call for call in calls if call[0] == "unet")  # step 1, before any sample draws
    assert first_step[1] == first_step[2] == training_set
    assert model.parked == tuple(n for n in ("vae", *ENCODERS) if n not in training_set)
    assert sorted(result.samples) == [1, 2] and all(p.is_file() for ps in result.samples.values() for p in ps)
