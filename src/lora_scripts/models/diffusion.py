"""Denoising-diffusion training maths any UNet family shares: the noise drawn, the per-sample loss and its
weights (kohya sd-scripts' options, by their published formulas). Nothing here knows a model's layout.

Hand-written because diffusers has no training-loss helpers for these options beyond `compute_snr`, which
the min-SNR weights use.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_snr

from ..config import TrainConfig
from ..errors import ConfigError


def _randn(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Drawn on the CPU (the same numbers on every device for one seed), then moved."""
    return torch.randn(shape, generator=generator, device="cpu").to(device)


def make_noise(latents: torch.Tensor, train: TrainConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The noise the model learns to predict: Gaussian, plus noise offset and multi-resolution noise."""
    noise = _randn(latents.shape, generator, latents.device)
    if train.noise_offset:
        offset: float | torch.Tensor = train.noise_offset
        if train.noise_offset_random_strength:  # kohya: one strength in [0, noise_offset) per batch
            offset = float(torch.rand(1, generator=generator)) * train.noise_offset
        if train.adaptive_noise_scale:  # kohya: offset + scale * |channel mean|, never below 0
            mean = latents.float().mean(dim=(2, 3), keepdim=True).abs()
            offset = (offset + train.adaptive_noise_scale * mean).clamp(min=0.0)
        noise = noise + offset * _randn(latents.shape[:2] + (1, 1), generator, latents.device)
    if train.multires_noise_iterations:
        iterations, discount = train.multires_noise_iterations, train.multires_noise_discount
        noise = pyramid_noise(noise, iterations, discount, generator)
    return noise


def pyramid_noise(
    noise: torch.Tensor, iterations: int, discount: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Multi-resolution noise (Whitaker's pyramid noise, kohya's version): noise drawn on ever coarser grids
    (each 2-4x smaller than the last), upsampled and added with weight discount**i, then scaled to std 1."""
    b, c, h, w = noise.shape
    noise = noise.clone()
    for i in range(iterations):
        r = float(torch.rand(1, generator=generator)) * 2 + 2
        hn, wn = max(1, int(h / r**i)), max(1, int(w / r**i))
        coarse = _randn((b, c, hn, wn), generator, noise.device)
        noise += F.interpolate(coarse, size=(h, w), mode="bilinear") * discount**i
        if hn == 1 or wn == 1:
            break
    return noise / noise.std()


def sample_timesteps(
    batch: int, scheduler, train: TrainConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """One training timestep per image, uniform in [min_timestep, max_timestep) (kohya; all by default)."""
    low = train.min_timestep or 0
    high = train.max_timestep or scheduler.config.num_train_timesteps
    if high > scheduler.config.num_train_timesteps:
        raise ConfigError(
            f"max_timestep {high} is beyond this model's {scheduler.config.num_train_timesteps} timesteps",
            "Lower max_timestep",
        )
    return torch.randint(low, high, (batch,), generator=generator, device="cpu")


def input_noise(noise: torch.Tensor, train: TrainConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The noise mixed into the model's input: with ip_noise_gamma, perturbed by extra noise that the
    target (built from `noise`) does not contain."""
    if not train.ip_noise_gamma:
        return noise
    gamma = train.ip_noise_gamma
    if train.ip_noise_gamma_random_strength:  # kohya: one strength in [0, ip_noise_gamma) per batch
        gamma = float(torch.rand(1, generator=generator)) * gamma
    return noise + gamma * _randn(noise.shape, generator, noise.device)


def snr_weights(scheduler, timesteps: torch.Tensor, gamma: float, v_prediction: bool) -> torch.Tensor:
    """Min-SNR-gamma weights per sample: min(SNR, gamma) / SNR, or / (SNR + 1) for v-prediction."""
    snr = compute_snr(scheduler, timesteps).float()
    if v_prediction:
        return torch.clamp(snr, max=gamma) / (snr + 1)
    return torch.clamp(gamma / snr, max=1.0)  # = min(SNR, gamma) / SNR, and 1 at SNR 0 (zero_terminal_snr)


def snr_loss_scale(
    scheduler, timesteps: torch.Tensor, train: TrainConfig, v_prediction: bool
) -> torch.Tensor:
    """kohya's other SNR weightings, multiplied per sample: scale_v_pred_loss_like_noise_pred
    (SNR / (SNR + 1)), v_pred_like_loss (1 + v / that), debiased_estimation_loss (1 / sqrt(SNR), or
    1 / (SNR + 1) for v-prediction). SNR is capped at 1000 as kohya does, and kept above 1e-3 (the last
    step of zero_terminal_snr has SNR 0)."""
    snr = compute_snr(scheduler, timesteps).float().clamp(min=1e-3, max=1000.0)
    like_noise = snr / (snr + 1)
    scale = torch.ones_like(snr)
    if train.scale_v_pred_loss_like_noise_pred:
        scale = scale * like_noise
    if train.v_pred_like_loss:
        scale = scale * (1 + train.v_pred_like_loss / like_noise)
    if train.debiased_estimation_loss:
        scale = scale * (1 / (snr + 1) if v_prediction else 1 / snr.sqrt())
    return scale


def huber_threshold(scheduler, timesteps: torch.Tensor, train: TrainConfig) -> torch.Tensor:
    """kohya's per-sample huber_c for `huber_schedule`."""
    c = train.huber_c
    if train.huber_schedule == "exponential":
        alpha = -math.log(c) / scheduler.config.num_train_timesteps
        return torch.exp(-alpha * timesteps.float())
    if train.huber_schedule == "snr":
        alpha_bar = scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()
        sigma = ((1.0 - alpha_bar) / alpha_bar) ** 0.5
        return (1 - c) / (1 + sigma) ** 2 + c
    return torch.full(timesteps.shape, c, device=timesteps.device)


def elementwise_loss(
    pred: torch.Tensor, target: torch.Tensor, train: TrainConfig, huber_c: torch.Tensor | None
) -> torch.Tensor:
    """The loss of every element (no reduction), by `loss_type`; huber_c has one value per sample."""
    if train.loss_type == "l1":
        return F.l1_loss(pred, target, reduction="none")
    if train.loss_type in ("huber", "smooth_l1"):
        c = huber_c.view(-1, *([1] * (pred.dim() - 1)))
        soft = torch.sqrt((pred - target) ** 2 + c**2) - c
        return 2 * c * soft if train.loss_type == "huber" else 2 * soft
    return F.mse_loss(pred, target, reduction="none")


def diffusion_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    scheduler,
    train: TrainConfig,
    v_prediction: bool,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The batch loss: each sample's mean loss, weighted by min-SNR when set and by `weights` (e.g.
    prior_loss_weight for regularisation images) when given, averaged over the batch."""
    pred, target = pred.float(), target.float()
    huber = train.loss_type in ("huber", "smooth_l1")
    huber_c = huber_threshold(scheduler, timesteps, train) if huber else None
    per_sample = elementwise_loss(pred, target, train, huber_c).mean(dim=tuple(range(1, pred.dim())))
    if train.min_snr_gamma:
        per_sample = per_sample * snr_weights(scheduler, timesteps, train.min_snr_gamma, v_prediction)
    if train.scale_v_pred_loss_like_noise_pred or train.v_pred_like_loss or train.debiased_estimation_loss:
        per_sample = per_sample * snr_loss_scale(scheduler, timesteps, train, v_prediction)
    if weights is not None:
        per_sample = per_sample * weights.to(per_sample.device, per_sample.dtype)
    return per_sample.mean()
