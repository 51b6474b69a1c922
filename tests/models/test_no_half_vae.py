"""no_half_vae on SD 1.x (kohya's key, ours too): under mixed precision the VAE keeps float32 weights and its
convs compute in float32, encoding the training images and decoding the samples, while the UNet runs in the
mixed precision; without it the VAE computes in the mixed precision as before. bf16 autocast on the CPU stands
in for a GPU's fp16."""

from __future__ import annotations

import pytest
import torch

from lora_scripts.config import build_config
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training


def _conv_dtypes(base_config, tmp_path, monkeypatch, **extra):
    """{encoder/decoder/unet: dtypes their Conv2d outputs had} over a 2-step bf16 run with one sample."""
    kept, seen = {}, []

    class Keeping(run_module.Trainer):
        def train(self):
            kept["model"] = self.model
            return super().train()

    def record(module, _args, output):
        if isinstance(module, torch.nn.Conv2d):
            seen.append((id(module), output.dtype))

    monkeypatch.setattr(run_module, "Trainer", Keeping)
    config = {
        **base_config,
        "output_dir": str(tmp_path / "out"),
        "mixed_precision": "bf16",
        "cache_latents": "no",  # every step encodes: the VAE runs under the trainer's autocast
        "max_train_steps": 2,
        "sample_prompts": ["neon phone"],
        "sample_every_n_steps": 2,
        "sample_steps": 2,
        **extra,
    }
    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        result = run_training(build_config(config))
    finally:
        handle.remove()
    model = kept["model"]
    assert sorted(result.samples) == [2] and result.precision == "bf16"
    parts = {id(m): name.split(".")[0] for name, m in model.vae.named_modules()}
    parts.update({id(m): "unet" for m in model.unet.modules()})
    dtypes = {part: {d for i, d in seen if parts.get(i) == part} for part in ("encoder", "decoder", "unet")}
    return dtypes, {p.dtype for p in model.vae.parameters()}


@pytest.mark.parametrize("no_half_vae, vae_dtype", [(True, torch.float32), (False, torch.bfloat16)])
def test_the_vae_computes_in_float32_with_no_half_vae(
    base_config, tmp_path, monkeypatch, no_half_vae, vae_dtype
):
    dtypes, weights = _conv_dtypes(base_config, tmp_path, monkeypatch, no_half_vae=no_half_vae)
    assert dtypes["encoder"] == dtypes["decoder"] == {vae_dtype} and weights == {vae_dtype}
    assert torch.bfloat16 in dtypes["unet"]  # autocast was on: only the VAE is exempt
