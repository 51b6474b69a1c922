"""SDXL built in code with random weights and small widths, for the tests: SDXL's block layout (3 UNet levels,
2 resnets per level, no attention in the first, transformer blocks in the other two, size/crop conditioning
through add_embedding), CLIP-L and OpenCLIP-G style text encoders (the second with a projection), KL-f8 VAE,
so every SDXL key mapping of the real clients applies unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from safetensors.torch import save_file

from ..files import replacing, replacing_folder
from .ldm_configs import SCALED_LINEAR
from .ldm_layout import sdxl_to_ldm
from .tiny import sd_text_encoder, tiny_vae
from .tokenizer import clip_tokenizer

TE1, TE2, TIME = 32, 32, 8  # text encoder widths and SDXL's time-id embedding width, small
SDXL_BASE_UNET = {  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json: for real-size checks (meta)
    "sample_size": 128,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "layers_per_block": 2,
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}


def build_tiny_sdxl(seed: int = 0) -> StableDiffusionXLPipeline:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2),
        attention_head_dim=(1, 1, 1),  # SDXL's heads are width // 64 (5, 10, 20): ldm_configs reads it so
        cross_attention_dim=TE1 + TE2,  # the two encoders' penultimate states, concatenated
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME,
        projection_class_embeddings_input_dim=6 * TIME + TE2,  # six time ids + the pooled text embedding
        norm_num_groups=32,
    )
    vae = tiny_vae(layers_per_block=1, scaling_factor=0.13025)  # SDXL's latent scale
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading", **SCALED_LINEAR
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=sd_text_encoder("sd1", TE1, layers=3, intermediate=2 * TE1),
        text_encoder_2=sd_text_encoder("sd2", TE2, layers=3, intermediate=2 * TE2, projection=True),
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        unet=unet,
        scheduler=scheduler,
    )


def save_tiny_sdxl(folder: Path, seed: int = 0) -> dict[str, Path]:
    """The tiny SDXL both ways: a diffusers folder and an SGM single file (each complete or absent)."""
    target, single = folder / "tiny-sdxl-diffusers", folder / "tiny-sdxl.safetensors"
    if not (target / "model_index.json").is_file() or not single.is_file():
        pipe = build_tiny_sdxl(seed)
        with replacing_folder(target) as tmp:
            pipe.save_pretrained(tmp, safe_serialization=True)
        parts = (pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2)
        tensors = sdxl_to_ldm(*(p.state_dict() for p in parts))
        with replacing(single) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"format": "pt"})
    return {"diffusers": target, "single_file": single}
