"""The demo base model that draws: SD1.5's layout at 64 px, trained on CPU on device silhouettes made in code.

``scripts/build_demo_base.py`` runs :func:`build` and commits the result to ``assets/demo-base/``. The model
keeps SD1.5's block structure (4 UNet levels with 2 resnets each, cross-attention on the first 3, a KL-f8 VAE,
a CLIP text encoder read through the offline tokenizer) with small widths. Unlike ``tiny.py``'s random model
its GroupNorms have :data:`NORM_GROUPS` groups: 16-32 channels in 32 groups normalise each channel on its
own and wash every flat colour out, so the VAE could not even pass one through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image

from ..data.synthetic import SIZE, plain_dataset, random_images
from ..errors import ModelError
from .ldm_configs import NORM_GROUPS_KEY, SCALED_LINEAR
from .tiny import assemble_pipeline, save_tiny_single_file, sd_text_encoder

NORM_GROUPS = 4
DEMO_BASE_DIR = Path(__file__).resolve().parents[3] / "assets" / "demo-base"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildSettings:
    seed: int = 0
    variants: int = 8  # images per (object, colour, background)
    vae_random: int = 256  # images of random shapes in random colours the VAE also learns
    vae_probe: float = 2.0  # weight of the linear colour probe on the latents (see train_vae)
    vae_steps: int = 2500
    vae_batch: int = 8
    unet_steps: int = 3000
    unet_batch: int = 32
    lr: float = 1e-3
    threads: int = 1  # one thread: faster on a shared 2-core machine; results depend on it


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    raw = torch.stack([torch.frombuffer(bytearray(i.tobytes()), dtype=torch.uint8) for i in images])
    return raw.view(len(images), SIZE, SIZE, 3).permute(0, 3, 1, 2).float() / 127.5 - 1


# --- the model ---------------------------------------------------------------------------------------------
def build_pipeline(seed: int) -> StableDiffusionPipeline:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=SIZE // 8,
        block_out_channels=(32, 48, 48, 48),
        layers_per_block=2,  # SD1.5's, and what models/ldm_configs.py assumes
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32,
        attention_head_dim=8,  # diffusers' SD1 name for 8 heads, as ldm_configs reads it
        norm_num_groups=NORM_GROUPS,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=NORM_GROUPS,
        sample_size=SIZE,
        scaling_factor=0.18215,
    )
    text_encoder = sd_text_encoder("sd1", hidden=32, layers=3)
    return assemble_pipeline(unet, vae, text_encoder)


def _lr(step: int, total: int, peak: float) -> float:
    warm = max(1, total // 20)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))


def colour_whitening(pixels: torch.Tensor) -> torch.Tensor:
    """3x3 ZCA matrix of the dataset's pixel colours. Brightness carries ~30x the variance of the
    green-magenta direction, so a plain RGB loss learns that direction last: red came out orange and blue
    teal. The error measured in whitened colours as well makes every direction count (alone, it lost
    brightness: black came out dark green)."""
    cov = torch.cov(pixels.permute(1, 0, 2, 3).reshape(3, -1)) + 1e-3 * torch.eye(3)
    values, vectors = torch.linalg.eigh(cov)
    zca = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    return zca / zca.norm() * 3**0.5


def train_vae(
    vae: AutoencoderKL, pixels: torch.Tensor, colours: torch.Tensor, cfg: BuildSettings, say
) -> None:
    """Reconstruction error in RGB (brightness, learnt first) plus in whitened colours (hue), L1 + MSE.
    A linear probe must read each 8x8 cell's mean colour off its latent pixel: the latents become roughly
    linear in colour, as SD's are (the "latent to RGB" previews rely on it), and the decoder gets the colour
    it must draw instead of having to find it; without the probe hues drifted (red to orange or magenta).
    The decoder also sees slightly noisy latents, so what the UNet draws need not be exact. The posterior's
    variance is fixed near zero afterwards (see normalise_latents)."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    probe = torch.nn.Conv2d(vae.config.latent_channels, 3, 1)
    opt = torch.optim.AdamW([*vae.parameters(), *probe.parameters()], lr=cfg.lr * 2, weight_decay=0.0)
    vae.train()

    def white(t: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,bjhw->bihw", colours, t)

    for step in range(cfg.vae_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg.vae_steps, cfg.lr * 2)
        x = pixels[torch.randint(0, len(pixels), (cfg.vae_batch,), generator=gen)]
        z = vae.encode(x).latent_dist.mean
        jitter = torch.randn(z.shape, generator=gen) * 0.1 * z.detach().std()
        y = vae.decode(z + jitter).sample
        wy, wx = white(y), white(x)
        rgb, whitened = F.l1_loss(y, x) + F.mse_loss(y, x), F.l1_loss(wy, wx) + F.mse_loss(wy, wx)
        linear = F.mse_loss(probe(z), F.avg_pool2d(wx, 8))
        loss = rgb + whitened + cfg.vae_probe * linear + 1e-4 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.vae_steps - 1:
            say(
                f"VAE   step {step + 1:5d}/{cfg.vae_steps}  loss {loss.item():.4f}  probe {linear.item():.4f}"
            )
    vae.eval()


@torch.no_grad()
def normalise_latents(vae: AutoencoderKL, pixels: torch.Tensor) -> None:
    """Fold a per-channel shift and scale into quant_conv / post_quant_conv so that latents times SD's
    scaling factor (0.18215, which the loader assumes) have mean 0 and std 1, as in SD; the decoder's output
    is unchanged. The log-variance is set to a constant -20, so sampling the posterior equals its mean."""
    z = torch.cat([vae.encode(pixels[i : i + 64]).latent_dist.mean for i in range(0, len(pixels), 64)])
    mean, std = z.mean((0, 2, 3)), z.std((0, 2, 3))
    k = 1 / (std * vae.config.scaling_factor)
    q, p = vae.quant_conv, vae.post_quant_conv
    c = mean.numel()
    q.bias[:c] = (q.bias[:c] - mean) * k
    q.weight[:c] *= k.view(-1, 1, 1, 1)
    q.weight[c:] = 0
    q.bias[c:] = -20.0
    p.bias += (p.weight[:, :, 0, 0] @ mean).view(-1)
    p.weight /= k.view(1, -1, 1, 1)


def train_unet(
    pipe: StableDiffusionPipeline,
    latents: torch.Tensor,
    captions: list[str],
    cfg: BuildSettings,
    say: Progress,
) -> None:
    """The UNet and the text encoder together, SD's way (epsilon, DDPM scaled_linear, 1000 steps), with 10%
    empty captions for classifier-free guidance and min-SNR-5 loss weights; the EMA of the weights is kept.
    The text encoder runs once per distinct caption in a batch (there are only 65 captions)."""
    unet, te, tok = pipe.unet, pipe.text_encoder, pipe.tokenizer
    distinct = sorted(set(captions)) + [""]
    ids = tok(distinct, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    which = torch.tensor([distinct.index(c) for c in captions])
    sched = DDPMScheduler(num_train_timesteps=1000, clip_sample=False, **SCALED_LINEAR)
    snr = sched.alphas_cumprod / (1 - sched.alphas_cumprod)
    weight = snr.clamp(max=5.0) / snr
    params = list(unet.parameters()) + list(te.parameters())
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    te.train()
    unet.train()
    for step in range(cfg.unet_steps):
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg.unet_steps, cfg.lr)
        idx = torch.randint(0, len(latents), (cfg.unet_batch,), generator=gen)
        drop = torch.rand(cfg.unet_batch, generator=gen) < 0.1
        rows, inverse = torch.unique(torch.where(drop, len(distinct) - 1, which[idx]), return_inverse=True)
        cond = te(ids[rows])[0][inverse]
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (cfg.unet_batch,), generator=gen)
        pred = unet(sched.add_noise(x0, noise, t), t, cond).sample
        loss = (weight[t] * (pred - noise).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(0.995, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        if step % 50 == 0 or step == cfg.unet_steps - 1:
            say(f"UNet  step {step + 1:5d}/{cfg.unet_steps}  loss {loss.item():.4f}")
    with torch.no_grad():
        for e, p in zip(ema, params, strict=True):
            p.copy_(e)
    unet.eval()
    te.eval()


def build(cfg: BuildSettings, say: Progress = print, vae_file: Path | None = None) -> StableDiffusionPipeline:
    """The whole model. With `vae_file`, a VAE trained by an earlier build with the same settings is
    reused from it (or saved to it), to retrain only the UNet."""
    torch.set_num_threads(cfg.threads)
    images, captions = plain_dataset(cfg.seed, cfg.variants)
    say(f"Dataset: {len(images)} captioned device images, {cfg.vae_random} random ones for the VAE")
    pixels = to_tensor(images)
    pipe = build_pipeline(cfg.seed)
    if vae_file is not None and vae_file.is_file():
        pipe.vae.load_state_dict(torch.load(vae_file, weights_only=True))
        say(f"VAE read from {vae_file}")
    else:
        everything = torch.cat([pixels, to_tensor(random_images(cfg.vae_random, cfg.seed + 3))])
        train_vae(pipe.vae, everything, colour_whitening(pixels), cfg, say)
        normalise_latents(pipe.vae, pixels)
        if vae_file is not None:
            torch.save(pipe.vae.state_dict(), vae_file)
    say(f"VAE reconstruction error: {reconstruction_error(pipe.vae, pixels):.1f} RGB units (mean abs)")
    with torch.no_grad():
        latents = torch.cat(
            [pipe.vae.encode(pixels[i : i + 64]).latent_dist.mean for i in range(0, len(pixels), 64)]
        )
    latents = latents * pipe.vae.config.scaling_factor
    say(f"Latents: mean {latents.mean():.3f}, std {latents.std():.3f}")
    train_unet(pipe, latents, captions, cfg, say)
    return pipe


@torch.no_grad()
def reconstruction_error(vae: AutoencoderKL, pixels: torch.Tensor) -> float:
    rebuilt = torch.cat(
        [
            vae.decode(vae.encode(pixels[i : i + 64]).latent_dist.mean).sample
            for i in range(0, len(pixels), 64)
        ]
    )
    return float((rebuilt.clamp(-1, 1) - pixels).abs().mean() * 127.5)


# --- saving ------------------------------------------------------------------------------------------------
def save_single_file(pipe: StableDiffusionPipeline, path: Path) -> Path:
    """fp16, LDM layout like v1-5-pruned.safetensors; the header names the GroupNorm groups, which no
    tensor shape tells."""
    return save_tiny_single_file(pipe, path, "sd1", torch.float16, {NORM_GROUPS_KEY: str(NORM_GROUPS)})


def demo_base_files(folder: Path = DEMO_BASE_DIR) -> dict[str, Path]:
    """The committed demo base: its single file and diffusers folder, or a sentence saying how to build it."""
    files = {"single_file": folder / "demo-base.safetensors", "diffusers": folder / "diffusers"}
    if not files["single_file"].is_file() or not (files["diffusers"] / "model_index.json").is_file():
        raise ModelError(
            f"The demo base model is missing from {folder}",
            "Restore it with `git checkout -- assets/demo-base`, or rebuild it with "
            "`.venv/bin/python scripts/build_demo_base.py` (about 18 minutes on CPU)",
        )
    return files
