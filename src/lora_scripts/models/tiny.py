"""Stable Diffusion 1.x built in code with random weights: a tiny one and one of SD1.5's real size.

The tiny one keeps SD1.5's block layout (4 UNet levels, 2 resnets per level, cross-attention on 3, CLIP with
12 layers, KL-f8 VAE) with small widths, so every key mapping of the real clients applies to it unchanged;
the demo and the tests use it. The full-size one (UNet 860M, CLIP ViT-L/14, KL-f8 VAE) is for the real-size
loading test and the benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..files import replacing
from .ldm_configs import SCALED_LINEAR
from .ldm_layout import pipeline_to_ldm
from .tokenizer import clip_tokenizer


def build_tiny_sd(seed: int = 0, family: str = "sd1") -> StableDiffusionPipeline:
    """`family` "sd2" gives SD 2.x's differences: linear projections, per-level heads, upcast attention,
    an OpenCLIP-style (gelu, pad "!") text encoder."""
    if family == "sd2":
        return _tiny_sd2(seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = tiny_vae()
    text_encoder = sd_text_encoder("sd1", hidden=64, layers=12)
    return assemble_pipeline(unet, vae, text_encoder)


def tiny_vae(layers_per_block: int = 2, scaling_factor: float = 0.18215) -> AutoencoderKL:
    """KL-f8 VAE with SD's 4 levels at width 32 (SDXL's tiny one: 1 block per level, SDXL's latent scale)."""
    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=layers_per_block,
        norm_num_groups=32,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def sd_text_encoder(
    family: str, hidden: int, layers: int, intermediate: int = 128, heads: int = 1, projection: bool = False
) -> CLIPTextModel:
    """A CLIP text encoder shaped as SD files hold it: SD1's CLIP (quick_gelu, padded with its end token)
    or SD2's OpenCLIP (gelu, padded with 0), the full 49408-token vocabulary, 77 positions. Small models
    keep one head: models/ldm_configs reads hidden_size // 64. `projection`: with its text projection
    (SDXL's OpenCLIP-G, whose pooled output the UNet reads)."""
    model = CLIPTextModelWithProjection if projection else CLIPTextModel
    return model(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=hidden,
            intermediate_size=intermediate,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=77,
            hidden_act="quick_gelu" if family == "sd1" else "gelu",
            projection_dim=hidden,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407 if family == "sd1" else 0,
        )
    )


def assemble_pipeline(unet, vae, text_encoder, tokenizer=None) -> StableDiffusionPipeline:
    """Built parts -> an SD pipeline with SD 1.5's own noise schedule and the offline CLIP tokenizer."""
    scheduler = PNDMScheduler(
        num_train_timesteps=1000, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False, **SCALED_LINEAR
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer or clip_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _tiny_sd2(seed: int) -> StableDiffusionPipeline:
    pipe = build_tiny_sd(seed)
    torch.manual_seed(seed)
    pipe.unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=64,
        attention_head_dim=[1, 1, 1, 1],
        use_linear_projection=True,
        upcast_attention=True,
        norm_num_groups=32,
    )
    pipe.text_encoder = sd_text_encoder("sd2", hidden=64, layers=3)
    pipe.tokenizer = clip_tokenizer("!")
    pipe.register_modules(unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer)
    return pipe


def save_tiny_single_file(
    pipe: StableDiffusionPipeline,
    path: Path,
    family: str = "sd1",
    dtype: torch.dtype | None = None,
    header: dict[str, str] | None = None,
) -> Path:
    """Write the pipeline as one LDM-layout .safetensors, with the extra keys real SD files carry; its
    weights cast to `dtype` when given, `header` added to the file's metadata."""
    sd = pipeline_to_ldm(
        pipe.unet.state_dict(), pipe.vae.state_dict(), pipe.text_encoder.state_dict(), family
    )
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    sd.update(
        {  # ignored by every loader, present in v1-5-pruned.safetensors
            "betas": betas.float(),
            "alphas_cumprod": alphas_cumprod.float(),
            "alphas_cumprod_prev": torch.cat([torch.ones(1), alphas_cumprod[:-1].float()]),
            "model_ema.decay": torch.tensor(0.9999),
            "model_ema.num_updates": torch.tensor(0, dtype=torch.int32),
        }
    )
    sd = {k: v.contiguous() for k, v in sd.items()}
    with replacing(path) as tmp:
        save_file(sd, tmp, {"format": "pt", **(header or {})})
    return path


def save_tiny_model(folder: Path, seed: int = 0, family: str = "sd1") -> dict[str, Path]:
    """Build the tiny model and save it both ways: diffusers folder and single-file checkpoint."""
    pipe = build_tiny_sd(seed, family)
    stem = "tiny-sd15" if family == "sd1" else f"tiny-{family}"
    diffusers_dir = folder / f"{stem}-diffusers"
    pipe.save_pretrained(diffusers_dir, safe_serialization=True)
    single = save_tiny_single_file(pipe, folder / f"{stem}.safetensors", family)
    (folder / "README.txt").write_text(
        json.dumps({"what": "random-weight SD1.5-topology model for demos/tests"})
    )
    return {"diffusers": diffusers_dir, "single_file": single}


def build_full_size_sd15(seed: int = 0):
    """UNet 860M + CLIP ViT-L/14 text encoder + KL-f8 VAE, built from their configs (no download)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8, sample_size=64)
    text_encoder = sd_text_encoder("sd1", hidden=768, layers=12, intermediate=3072, heads=12)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
        scaling_factor=0.18215,
    )
    return unet, vae, text_encoder
