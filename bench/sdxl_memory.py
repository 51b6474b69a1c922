"""SDXL LoRA memory estimate (issue 16): the weight and optimizer part counted exactly on the real-size
SDXL modules (stabilityai/stable-diffusion-xl-base-1.0's configs, built on the meta device: no memory, no
download) and the LoRA lora-scripts would inject; activations are a GPU measurement this machine cannot take.

python -m bench.sdxl_memory     # writes bench/results/real/sdxl_memory.json
"""

from __future__ import annotations

from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from lora_scripts.config import NetworkConfig
from lora_scripts.inject.lora import inject_network, lora_parameters
from lora_scripts.models.targets import unet_targets
from lora_scripts.models.tiny_sdxl import SDXL_BASE_UNET

from .common import save_results

GB = 1024**3
CLIP_L = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
CLIP_G = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}
OPTIMIZER_BYTES = {"adamw": 8, "adamw8bit": 2, "adafactor": 4}  # state bytes per trained parameter (approx.)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def estimate(rank: int = 16) -> dict:
    with init_empty_weights():
        unet = UNet2DConditionModel(**SDXL_BASE_UNET)
        te1 = CLIPTextModel(CLIPTextConfig(vocab_size=49408, **CLIP_L))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(vocab_size=49408, **CLIP_G))
        vae = AutoencoderKL(**VAE)
        inject_network(unet, unet_targets(unet, with_conv=False), NetworkConfig(lora_rank=rank))
    lora = sum(p.numel() for p in lora_parameters(unet))
    counts = {"unet": _count(unet) - lora, "te1": _count(te1), "te2": _count(te2), "vae": _count(vae)}
    rows = {
        "UNet weights (fp16/bf16)": counts["unet"] * 2 / GB,
        "text encoders (fp16; resident, though unused once their outputs are cached)": (
            counts["te1"] + counts["te2"]
        )
        * 2
        / GB,
        "VAE (fp32: SDXL's overflows in fp16; resident, unused once latents are cached)": (
            counts["vae"] * 4 / GB
        ),
        f"LoRA rank {rank} weights + gradients (fp32)": lora * 8 / GB,
    }
    for name, per in OPTIMIZER_BYTES.items():
        rows[f"optimizer state, {name}"] = lora * per / GB
    resident = sum(v for k, v in rows.items() if not k.startswith("optimizer"))
    recipe = resident + rows["optimizer state, adamw8bit"]
    return {"rank": rank, "parameters": {**counts, "lora": lora}, "gib": rows, "recipe_8gb_gib": recipe}


def main() -> None:
    result = estimate()
    print(save_results("sdxl_memory", False, result))
    for name, value in result["gib"].items():
        print(f"{value:7.2f} GiB  {name}")


if __name__ == "__main__":
    main()
