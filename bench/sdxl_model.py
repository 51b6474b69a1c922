"""The SDXL both benchmark sides load: a diffusers folder, built in code with random weights, written once.

--tiny: the project's tiny SDXL (models/tiny_sdxl.py). Otherwise SDXL base 1.0's real architecture (UNet
2.57 B, CLIP-L, OpenCLIP-G, KL-f8 VAE; configs from bench/sdxl_memory.py) in fp16, built straight on the GPU
when there is one (random init of 3.5 B parameters takes minutes on a CPU, seconds on a GPU). The tokenizers
are the project's offline CLIP tokenizer (models/tokenizer.py; SDXL's second one pads with "!").

python -m bench.sdxl_model [--tiny]      # prints the folder (under bench/.cache, or BENCH_OUT/.cache)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import CACHE


def sdxl_folder(tiny: bool, log=print) -> Path:
    """The folder both sides load (built on the first call, then reused; complete or absent)."""
    if tiny:
        from lora_scripts.models.tiny_sdxl import save_tiny_sdxl

        return save_tiny_sdxl(CACHE)["diffusers"]
    from lora_scripts.files import replacing_folder

    folder = CACHE / "sdxl-random-fp16"
    if (folder / "model_index.json").is_file():
        return folder
    import torch

    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    log(f"Building the real-size SDXL with random weights on {device} (once)...", flush=True)
    pipe = build_real_sdxl(device)
    for module in pipe.components.values():  # save_pretrained writes from host memory
        if isinstance(module, torch.nn.Module):
            module.to("cpu")
    log(f"  built in {time.time() - started:.0f} s; writing {folder}", flush=True)
    with replacing_folder(folder) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
    del pipe
    if device == "cuda":
        torch.cuda.empty_cache()
    log(f"  wrote {folder} in {time.time() - started:.0f} s", flush=True)
    return folder


def build_real_sdxl(device: str):
    """SDXL base 1.0's architecture with random weights in fp16, built on `device` ("meta" to check it)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )

    from lora_scripts.models.ldm_configs import SCALED_LINEAR
    from lora_scripts.models.tiny import sd_text_encoder
    from lora_scripts.models.tiny_sdxl import SDXL_BASE_UNET
    from lora_scripts.models.tokenizer import clip_tokenizer

    from .sdxl_memory import CLIP_G, CLIP_L, VAE

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_BASE_UNET).half()
        te1 = sd_text_encoder(
            "sd1",
            CLIP_L["hidden_size"],
            CLIP_L["num_hidden_layers"],
            CLIP_L["intermediate_size"],
            CLIP_L["num_attention_heads"],
        ).half()
        te2 = sd_text_encoder(
            "sd2",
            CLIP_G["hidden_size"],
            CLIP_G["num_hidden_layers"],
            CLIP_G["intermediate_size"],
            CLIP_G["num_attention_heads"],
            projection=True,
        ).half()
        vae = AutoencoderKL(**VAE, sample_size=1024, scaling_factor=0.13025).half()
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, steps_offset=1, timestep_spacing="leading", **SCALED_LINEAR
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=te1,
        text_encoder_2=te2,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        unet=unet,
        scheduler=scheduler,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true")
    print(sdxl_folder(ap.parse_args().tiny))


if __name__ == "__main__":
    main()
