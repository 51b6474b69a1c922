"""SDXL behind models/family.py's protocol: the SD model with two text encoders and size conditioning.

Everything SD 1.x/2.x and SDXL train alike (noise, timesteps, the loss options, latent and text caches,
augmentation) is StableDiffusion's; this class changes only what SDXL does differently:
- the prompt: CLIP-L's and OpenCLIP-G's penultimate hidden states side by side, plus OpenCLIP-G's pooled
  (projected) output, which the UNet reads through `added_cond_kwargs`;
- the time ids: each image's original size, the crop its bucket made and its bucket size (data's
  size_conditioning, kept in the latent cache): SDXL's size conditioning;
- the VAE stays in float32 (SDXL's VAE overflows to NaN in fp16, the commonest SDXL training failure);
- LoRA files name the UNet's modules in SGM form and the encoders lora_te1_ / lora_te2_ (save/kohya_keys).
Base models: the SGM single file WebUI/ComfyUI users have (sd_xl_base_1.0.safetensors) or a diffusers folder
(unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import init_empty_weights
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    EulerDiscreteScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ..config import ModelConfig, NetworkConfig
from ..errors import ModelError
from . import ldm_configs
from .detect import ModelSource, read_checkpoint
from .family import FamilyInfo
from .ldm_configs import SCALED_LINEAR
from .loader import _load, single_file_errors, text_encoder_from
from .long_prompts import chunked_ids, joined_states
from .sd import StableDiffusion
from .targets import text_targets, unet_targets
from .tokenizer import clip_tokenizer
from .vae import with_vae

log = logging.getLogger(__name__)
SDXL_INFO = FamilyInfo(
    "sdxl",
    "SDXL",
    lora_width=2048,
    unet_names="sgm",
    default_resolution=1024,
    lr_blocks=(9, 3),  # kohya's SDXL numbering: input/output_blocks 0-8, middle_block 0-2
    text_encoder_hint="SDXL: training its two text encoders rarely helps a style and costs a lot of memory; "
    "train_text_encoder: false (the default) is kohya's advice too",
)
CLIP_L, OPEN_CLIP_G = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
VAE_SCALE = 0.13025  # SDXL's VAE latent scale (SD 1.x/2.x: 0.18215)
COMPONENTS = {"unet": "unet", "te1": "text_encoder", "te2": "text_encoder_2"}


@dataclass
class SDXLParts:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    text_encoder_2: CLIPTextModelWithProjection
    tokenizer: CLIPTokenizer
    tokenizer_2: CLIPTokenizer
    noise_scheduler: DDPMScheduler
    prediction_type: str
    source: str


class SDXLFamily:
    info = SDXL_INFO

    def matches_checkpoint(self, keys: list[str]) -> bool:
        return any(k.startswith("conditioner.embedders.") for k in keys)  # SGM's two-encoder conditioner

    def matches_folder(self, path: Path) -> bool:
        return (path / "text_encoder_2" / "config.json").is_file() and (path / "unet").is_dir()

    def load(self, source: ModelSource, cfg: ModelConfig) -> StableDiffusionXL:
        if source.kind == "single_file":
            parts = load_sdxl_single_file(source.location, cfg)
        else:
            parts = load_sdxl_folder(source.location, cfg)
        return StableDiffusionXL(with_vae(parts, cfg.vae, cfg.allow_pickle))


SDXL = SDXLFamily()


def load_sdxl_single_file(path: str, cfg: ModelConfig) -> SDXLParts:
    """An SGM single file (sd_xl_base_1.0.safetensors as WebUI/ComfyUI users have it), converted with
    diffusers' own single-file functions; every size is read from the tensors (models/ldm_configs)."""
    log.info("Loading base model %s (SDXL single file)", path)
    sd = read_checkpoint(path)
    groups = ldm_configs.norm_groups(path)
    with single_file_errors(path, "an SDXL model", groups):
        with init_empty_weights():
            unet = UNet2DConditionModel(**ldm_configs.sdxl_unet_config(sd, groups))
        _load(unet, convert_ldm_unet_checkpoint(sd, unet.config), "UNet", path)
        with init_empty_weights():
            vae = AutoencoderKL(**{**ldm_configs.vae_config(sd, groups), "scaling_factor": VAE_SCALE})
        _load(vae, convert_ldm_vae_checkpoint(sd, vae.config), "VAE", path)
        first = text_encoder_from("sd1", sd, path, CLIP_L)
        second = text_encoder_from("sd2", sd, path, OPEN_CLIP_G, with_projection=True)
    prediction = cfg.prediction_type if cfg.prediction_type != "auto" else "epsilon"
    log.info("Model family sdxl, prediction type %s", prediction)
    return SDXLParts(
        unet=unet,
        vae=vae,
        text_encoder=first,
        text_encoder_2=second,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer("!"),
        noise_scheduler=_noise_schedule(prediction),
        prediction_type=prediction,
        source=path,
    )


def _noise_schedule(prediction: str) -> DDPMScheduler:
    return DDPMScheduler(
        num_train_timesteps=1000, clip_sample=False, prediction_type=prediction, **SCALED_LINEAR
    )


def load_sdxl_folder(location: str, cfg: ModelConfig) -> SDXLParts:
    kwargs = {"local_files_only": True}
    log.info("Loading base model %s (SDXL diffusers folder)", location)
    try:
        parts = {
            "unet": UNet2DConditionModel.from_pretrained(location, subfolder="unet", **kwargs),
            "vae": AutoencoderKL.from_pretrained(location, subfolder="vae", **kwargs),
            "text_encoder": CLIPTextModel.from_pretrained(location, subfolder="text_encoder", **kwargs),
            "text_encoder_2": CLIPTextModelWithProjection.from_pretrained(
                location, subfolder="text_encoder_2", **kwargs
            ),
            "tokenizer": CLIPTokenizer.from_pretrained(location, subfolder="tokenizer", **kwargs),
            "tokenizer_2": CLIPTokenizer.from_pretrained(location, subfolder="tokenizer_2", **kwargs),
        }
        scheduler = json.loads((Path(location) / "scheduler" / "scheduler_config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"Could not load the SDXL diffusers folder '{location}': {str(exc).splitlines()[0][:160]}",
            "Check that it has unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/ and "
            "scheduler/ subfolders",
        ) from exc
    prediction = cfg.prediction_type if cfg.prediction_type != "auto" else None
    prediction = prediction or scheduler.get("prediction_type") or "epsilon"
    log.info("Model family sdxl, prediction type %s", prediction)
    return SDXLParts(
        **parts, noise_scheduler=_noise_schedule(prediction), prediction_type=prediction, source=location
    )


class StableDiffusionXL(StableDiffusion):
    """A loaded SDXL model as the trainer sees it."""

    TEXT_ENCODERS = ("te1", "te2")
    COMPONENTS = COMPONENTS
    READS_CLIP_SKIP = False
    vae_float32 = True  # SDXL's VAE overflows to NaN in fp16 (with or without no_half_vae)

    def __init__(self, parts: SDXLParts):  # noqa: D107 - StableDiffusion's fields, two encoders
        self.parts = parts
        self.unet, self.vae = parts.unet, parts.vae
        self.text_encoder, self.text_encoder_2 = parts.text_encoder, parts.text_encoder_2
        self.tokenizer, self.tokenizer_2 = parts.tokenizer, parts.tokenizer_2
        self.noise_scheduler = parts.noise_scheduler
        self.family, self.info = "sdxl", SDXL_INFO
        self.prediction_type = parts.prediction_type
        self.latent_cache = None
        self.text_cache = None
        self.device, self.parked, self.resident = None, (), ()
        self._pooled = parts.text_encoder_2.config.projection_dim

    # --- protocol: modules and LoRA targets --------------------------------------------------------
    def trained_components(self, net: NetworkConfig) -> list[str]:
        return ["unet", "te1", "te2"] if net.train_text_encoder else ["unet"]

    def lora_targets(self, component: str, net: NetworkConfig) -> dict[str, str]:
        if component == "unet":
            return unet_targets(self.unet, with_conv=net.conv_rank is not None)
        # every q/k/v/out_proj of each attention: A1111 folds OpenCLIP-G's into in_proj only as a full set
        encoder = getattr(self, COMPONENTS[component])
        targets = text_targets(encoder)
        if component == "te1":  # SDXL reads CLIP-L's penultimate layer: its last layer never acts
            last = f"layers.{encoder.config.num_hidden_layers - 1}."
            targets = {n: k for n, k in targets.items() if last not in n}
        return targets

    def enable_gradient_checkpointing(self, component: str) -> None:
        if component == "unet":
            self.unet.enable_gradient_checkpointing()
        else:
            getattr(self, COMPONENTS[component]).gradient_checkpointing_enable()

    def _te_trainable(self) -> bool:
        encoders = (self.text_encoder, self.text_encoder_2)
        return any(p.requires_grad for m in encoders for p in m.parameters())

    # --- the model's own operations ----------------------------------------------------------------
    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """Both tokenizers' ids, stacked: [batch, 2, chunks, 77] (their padding differs); one chunk, or
        max_token_length / 75 (models/long_prompts.py)."""
        length = getattr(self, "max_token_length", None) or self.tokenizer.model_max_length - 2
        ids = [chunked_ids(tok, captions, length) for tok in (self.tokenizer, self.tokenizer_2)]
        return torch.stack(ids, dim=1)

    def encode_prompt(self, input_ids: torch.Tensor) -> torch.Tensor:
        """[batch, tokens + 1, width]: both encoders' penultimate states side by side (a long caption's
        chunks joined as SD's are), then one row holding OpenCLIP-G's pooled (projected) output of the first
        chunk, as kohya pools (zero-padded), so caches and the shared loss carry one tensor."""
        batch, _, chunks, width = input_ids.shape
        device = self.text_encoder.device
        first = self.text_encoder(input_ids[:, 0].reshape(-1, width).to(device), output_hidden_states=True)
        second = self.text_encoder_2(input_ids[:, 1].reshape(-1, width).to(device), output_hidden_states=True)
        states = [joined_states(out.hidden_states[-2], batch) for out in (first, second)]
        hidden = torch.cat(states, dim=-1)
        pooled = second.text_embeds.reshape(batch, chunks, -1)[:, 0]
        pooled = F.pad(pooled, (0, hidden.shape[-1] - self._pooled)).to(hidden.dtype)
        return torch.cat([hidden, pooled[:, None, :]], dim=1)

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor, sizes: torch.Tensor
    ) -> torch.Tensor:
        hidden, pooled = cond[:, :-1], cond[:, -1, : self._pooled]
        # size conditioning: each image's (original size, crop top-left, target size) as it was bucketed
        added = {"text_embeds": pooled, "time_ids": sizes.to(noisy.device, hidden.dtype)}
        return self.unet(noisy, timesteps, hidden, added_cond_kwargs=added).sample

    # --- protocol: samples and metadata --------------------------------------------------------------
    def pipeline(self, unet=None, text_encoder=None, text_encoder_2=None) -> StableDiffusionXLPipeline:
        scheduler = EulerDiscreteScheduler.from_config(self.parts.noise_scheduler.config)
        return StableDiffusionXLPipeline(
            vae=self.vae,
            text_encoder=text_encoder or self.text_encoder,
            text_encoder_2=text_encoder_2 or self.text_encoder_2,
            tokenizer=self.tokenizer,
            tokenizer_2=self.tokenizer_2,
            unet=unet or self.unet,
            scheduler=scheduler,
        )

    def single_file_tensors(self) -> dict[str, torch.Tensor]:
        """The model in sd_xl_base_1.0.safetensors's SGM layout (`lora merge` writes merged weights)."""
        from .ldm_layout import sdxl_to_ldm
        from .sd import _unwrap

        parts = (self.unet, self.vae, self.text_encoder, self.text_encoder_2)
        return sdxl_to_ldm(*(_unwrap(p).state_dict() for p in parts))

    def metadata_facts(self) -> dict[str, str]:
        v = self.prediction_type == "v_prediction"
        return {
            "ss_v2": "False",
            "ss_base_model_version": "sdxl_base_v1-0",  # kohya's name for SDXL base LoRAs
            "ss_v_parameterization": str(v),
            "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
            "modelspec.prediction_type": "v" if v else "epsilon",
        }
