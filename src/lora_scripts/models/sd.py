"""The SD 1.x/2.x family behind the small protocol the trainer uses: tokenize, encode, predict, target."""

from __future__ import annotations

import torch
from diffusers import StableDiffusionPipeline

from .loader import Components


class StableDiffusion:
    """Everything family-specific the training loop needs; it knows nothing about LoRA."""

    def __init__(self, parts: Components):
        self.parts = parts
        self.unet = parts.unet
        self.vae = parts.vae
        self.text_encoder = parts.text_encoder
        self.tokenizer = parts.tokenizer
        self.noise_scheduler = parts.noise_scheduler
        self.family = parts.family
        self.prediction_type = parts.prediction_type

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        return self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    def encode_prompt(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(self.text_encoder.device))[0]

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.vae.device, self.vae.dtype)
        return self.vae.encode(pixels).latent_dist.sample() * self.vae.config.scaling_factor

    def predict(self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.unet(noisy, timesteps, cond).sample

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return noise

    def pipeline(self, unet=None, text_encoder=None) -> StableDiffusionPipeline:
        """An inference pipeline sharing this model's (possibly LoRA-injected) modules."""
        from diffusers import EulerDiscreteScheduler

        scheduler = EulerDiscreteScheduler.from_config(self.noise_scheduler.config)
        return StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=text_encoder or self.text_encoder,
            tokenizer=self.tokenizer,
            unet=unet or self.unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
