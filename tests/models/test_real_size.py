"""A checkpoint shaped exactly like v1-5-pruned.safetensors (random weights) loads as WebUI users have it."""

import time

import pytest
import torch
from safetensors.torch import save_file

from lora_scripts.config import ModelConfig
from lora_scripts.models.ldm_layout import pipeline_to_ldm
from lora_scripts.models.loader import load_components
from lora_scripts.models.targets import text_targets, unet_targets
from lora_scripts.models.tiny import build_full_size_sd15


@pytest.mark.slow
def test_real_size_sd15_single_file(tmp_path):
    started = time.time()
    unet, vae, te = build_full_size_sd15()  # SD1.5 configs: UNet 860M, CLIP ViT-L/14, KL-f8 VAE
    sd = pipeline_to_ldm(unet.state_dict(), vae.state_dict(), te.state_dict(), "sd1")
    sd = {k: v.half().contiguous() for k, v in sd.items()}  # the fp16 layout most downloads use
    # Keys real files carry and every loader ignores: noise-schedule buffers and EMA bookkeeping.
    sd["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    sd["model_ema.decay"] = torch.tensor(0.9999)
    sd["model_ema.diffusion_modelinput_blocks00weight"] = sd[
        "model.diffusion_model.input_blocks.0.0.weight"
    ].clone()
    path = tmp_path / "v1-5-pruned.safetensors"
    save_file(sd, path)
    del sd

    parts = load_components(ModelConfig(base_model=str(path)))
    assert (parts.family, parts.prediction_type) == ("sd1", "epsilon")
    assert list(parts.unet.config.block_out_channels) == [320, 640, 1280, 1280]
    assert parts.unet.config.cross_attention_dim == 768 and not parts.unet.config.use_linear_projection
    assert parts.text_encoder.config.num_hidden_layers == 12 and parts.text_encoder.config.hidden_size == 768
    assert parts.text_encoder.config.num_attention_heads == 12
    assert list(parts.vae.config.block_out_channels) == [128, 256, 512, 512]
    for built, loaded in ((unet, parts.unet), (vae, parts.vae), (te, parts.text_encoder)):
        want, got = built.state_dict(), loaded.state_dict()
        assert set(want) == set(got)
        for key in list(want)[:: max(1, len(want) // 25)]:
            assert torch.equal(want[key].half().float(), got[key]), key
    assert (
        len(unet_targets(parts.unet, with_conv=False)) == 192 and len(text_targets(parts.text_encoder)) == 72
    )
    assert sum(p.numel() for p in parts.unet.parameters()) > 850_000_000
    print(f"real-size build+save+load: {time.time() - started:.0f} s")
