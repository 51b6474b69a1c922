"""The SD 1.x/2.x family behind models/family.py's protocol: detection, loading, LoRA targets, the loss."""

from __future__ import annotations

import contextlib
import json
import logging
import random
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from PIL import Image
from torch import nn

from ..config import DataConfig, ModelConfig, NetworkConfig, TrainConfig
from ..data import DatasetIndex, ImageItem, draw_augment, load_pixels, make_caption, size_conditioning
from ..data.latent_cache import LatentCache
from ..data.text_cache import TextCache, text_cache_blocker
from .detect import SD1_TE_PREFIX, SD2_TE_PREFIX, UNET_PREFIX, ModelSource
from .diffusion import diffusion_loss, input_noise, make_noise, sample_timesteps
from .family import FamilyInfo
from .loader import Components, load_components, text_family
from .long_prompts import chunked_ids, joined_states
from .lr_blocks import unet_block
from .offload import PARKED, brought_back, hold
from .render import RenderRequest, render_one
from .targets import text_targets, unet_targets
from .vae import encoder_id, with_vae

log = logging.getLogger(__name__)
SD1_INFO = FamilyInfo("sd1", "SD 1.x", lora_width=768, lr_blocks=(12, 1))
SD2_INFO = FamilyInfo("sd2", "SD 2.x", lora_width=1024, lr_blocks=(12, 1))
INFOS = {i.name: i for i in (SD1_INFO, SD2_INFO)}


class StableDiffusionFamily:
    """SD 1.x (CLIP ViT-L) or SD 2.x (OpenCLIP ViT-H): the same code, told apart by the text encoder."""

    def __init__(self, info: FamilyInfo, te_prefix: str):
        self.info, self.te_prefix = info, te_prefix

    def matches_checkpoint(self, keys: list[str]) -> bool:
        has_unet = any(k.startswith(UNET_PREFIX) for k in keys)
        return has_unet and any(k.startswith(self.te_prefix) for k in keys)

    def matches_folder(self, path: Path) -> bool:
        try:
            config = json.loads((path / "text_encoder" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return (path / "unet").is_dir() and text_family(
            config.get("hidden_size", 0), config.get("hidden_act", "")
        ) == self.info.name

    def load(self, source: ModelSource, cfg: ModelConfig) -> StableDiffusion:
        parts = with_vae(load_components(cfg, family=self.info.name), cfg.vae, cfg.allow_pickle)
        return StableDiffusion(parts, vae_float32=cfg.no_half_vae)


SD1 = StableDiffusionFamily(SD1_INFO, SD1_TE_PREFIX)
SD2 = StableDiffusionFamily(SD2_INFO, SD2_TE_PREFIX)


class StableDiffusion:
    """A loaded SD 1.x/2.x model as the trainer sees it; it knows nothing about LoRA files or loops."""

    TEXT_ENCODERS = ("te",)  # its text-encoder components (SDXL: te1, te2)
    COMPONENTS = {"unet": "unet", "te": "text_encoder"}  # component -> attribute holding its module
    READS_CLIP_SKIP = True  # SDXL reads fixed layers of its encoders
    vae_float32 = False  # the VAE kept and run in float32 under mixed precision (no_half_vae; SDXL's always)

    def __init__(self, parts: Components, vae_float32: bool = False):
        self.parts = parts
        self.vae_float32 = vae_float32
        self.unet = parts.unet
        self.vae = parts.vae
        self.text_encoder = parts.text_encoder
        self.tokenizer = parts.tokenizer
        self.noise_scheduler = parts.noise_scheduler
        self.family = parts.family
        self.info = INFOS[parts.family]
        self.prediction_type = parts.prediction_type
        self.latent_cache: LatentCache | None = None
        self.text_cache: TextCache | None = None
        self.device: torch.device | None = None  # where training runs (place(), or the UNet's at caching)
        self.parked: tuple[str, ...] = ()  # modules moved off the accelerator after caching (models/offload)
        self.resident: tuple[str, ...] = ()  # the modules prepare_inputs last put on `device`

    # --- protocol: modules and LoRA targets --------------------------------------------------------
    def adapter_modules(self) -> dict[str, nn.Module]:
        return {component: getattr(self, attr) for component, attr in self.COMPONENTS.items()}

    def trained_components(self, net: NetworkConfig) -> list[str]:
        return ["unet", "te"] if net.train_text_encoder else ["unet"]

    def lora_targets(self, component: str, net: NetworkConfig) -> dict[str, str]:
        if component == "unet":
            return unet_targets(self.unet, with_conv=net.conv_rank is not None)
        return text_targets(self.text_encoder)

    def lr_block(self, param_name: str) -> tuple[str, int] | None:
        """("down", i) / ("up", i) / ("mid", i): the UNet block of a LoRA parameter for down/mid/up_lr_weight,
        numbered as kohya's lists are (models/lr_blocks); None outside the blocks."""
        return unet_block(param_name, self.info.lr_blocks[1])

    def frozen_modules(self) -> list[nn.Module]:
        """Cast to the compute dtype by the trainer; a float32 VAE is not among them (prepare_inputs)."""
        modules = [getattr(self, attr) for attr in self.COMPONENTS.values()]
        return modules if self.vae_float32 else [*modules, self.vae]

    def replace_module(self, component: str, module: nn.Module) -> None:
        setattr(self, self.COMPONENTS[component], module)

    def place(self, device: torch.device) -> None:
        """Where training will run (train/setup). The modules stay where they were loaded until
        prepare_inputs brings each there for the phase that needs it: the VAE alone while latents are
        cached, the text encoders alone while their outputs are, then the UNet and what steps still call."""
        self.device = torch.device(device)

    def _hold(self, names: list[str]) -> None:
        self.resident = hold(self, names, [*self.COMPONENTS.values(), "vae"], self.device)

    def enable_gradient_checkpointing(self, component: str) -> None:
        if component == "unet":
            self.unet.enable_gradient_checkpointing()
        else:
            self.text_encoder.gradient_checkpointing_enable()

    # --- protocol: data -> loss --------------------------------------------------------------------
    def prepare_inputs(
        self, index: DatasetIndex, data: DataConfig, train: TrainConfig, trained: list[str], cache_dir: Path
    ) -> None:
        if self.vae_float32:  # it comes to the device when it encodes
            self.vae.to(dtype=torch.float32).requires_grad_(False)
        if train.zero_terminal_snr:
            self.use_zero_terminal_snr()
        self.clip_skip = train.clip_skip or 1  # both before the text cache is filled
        self.max_token_length = train.max_token_length
        if self.clip_skip != 1 and not self.READS_CLIP_SKIP:
            log.warning(
                "clip_skip has no effect on %s models: they read fixed layers of their text encoders "
                "(kohya ignores it for them too)",
                self.info.display_name,
            )
            self.clip_skip = 1
        if index.reg_items:  # regularisation images are encoded and cached like training images
            index = replace(index, items=index.items + index.reg_items)
        self.device = self.device or _unwrap(self.unet).device  # not placed: where the UNet already is
        if train.cache_latents != "no":
            for key in ("flip_aug", "color_aug", "random_crop"):
                if getattr(data, key):
                    log.warning("cache_latents is on, so %s has no effect (latents are cached once)", key)
            folder = cache_dir if train.cache_latents == "disk" else None
            self.latent_cache = LatentCache(self.encode_image, folder, encoder_id(self.vae))
            self._hold(["vae"])
            self.latent_cache.fill(index)
        blocker = text_cache_blocker(
            train.cache_text_encoder_outputs,
            any(c in self.TEXT_ENCODERS for c in trained),
            data.shuffle_caption,
            data.caption_dropout_rate,
            data.caption_tag_dropout_rate,
        )
        if blocker:
            log.info("Text-encoder outputs are not cached: %s", blocker)
        else:
            self.text_cache = TextCache(self.encode_prompt, self.tokenize)
            self._hold([self.COMPONENTS[c] for c in self.TEXT_ENCODERS])
            # the caption as a step sees it (no shuffle or dropout here, so it does not vary)
            self.text_cache.fill([make_caption(i.caption, data, random.Random(0)) for i in index.items])
            log.info("Text-encoder outputs cached for %d distinct captions", len(self.text_cache.memory))
        self._park_cached()

    def _park_cached(self) -> None:
        """What only made cached inputs stays off the accelerator until samples need it; the rest comes
        (models/offload)."""
        names = ["vae"] if self.latent_cache is not None else []
        if self.text_cache is not None:
            names += [self.COMPONENTS[c] for c in self.TEXT_ENCODERS]
        if names and self.device != PARKED:
            log.info("Cached, so off the %s until samples are drawn: %s", self.device, ", ".join(names))
        self.parked = tuple(names)
        self._hold([n for n in (*self.COMPONENTS.values(), "vae") if n not in self.parked])

    def loss(
        self,
        items: list[ImageItem],
        data: DataConfig,
        train: TrainConfig,
        rng: random.Random,
        generator: torch.Generator | None = None,
        part: list[int] | None = None,
    ) -> torch.Tensor:
        dev = _unwrap(self.unet).device  # the VAE may be parked on the CPU (DDP has no .device)
        if self.latent_cache is not None:
            latents, sizes = self.latent_cache.get(items)
            latents = latents.to(dev)
        else:
            augments = [draw_augment(data, rng) for _ in items]
            pixels = torch.stack([load_pixels(i, aug=a) for i, a in zip(items, augments, strict=True)])
            latents = self.encode_image(pixels, generator).float().to(dev)
            sizes = torch.tensor([size_conditioning(i, a) for i, a in zip(items, augments, strict=True)])
        noise = make_noise(latents, train, generator)
        t = sample_timesteps(latents.shape[0], self.noise_scheduler, train, generator).to(dev)
        noisy = self.noise_scheduler.add_noise(latents, input_noise(noise, train, generator), t)
        captions = [make_caption(i.caption, data, rng) for i in items]
        if part is not None:  # every draw above was for the whole batch: keep this process's items
            index = torch.tensor(part)
            latents, noise, noisy, sizes = (x[index.to(x.device)] for x in (latents, noise, noisy, sizes))
            t, items, captions = t[index.to(t.device)], [items[i] for i in part], [captions[i] for i in part]
        if self.text_cache is not None:
            cond = self.text_cache.get(captions).to(dev)
        else:
            with torch.set_grad_enabled(self._te_trainable() and torch.is_grad_enabled()):
                cond = self.encode_prompt(self.tokenize(captions))
        pred = self.predict(noisy.to(cond.dtype), t, cond, sizes)  # under the trainer's autocast
        v = self.prediction_type == "v_prediction"
        weights = None
        if any(i.loss_weight != 1.0 for i in items):  # regularisation images: prior_loss_weight
            weights = torch.tensor([i.loss_weight for i in items])
        return diffusion_loss(
            pred, self.target(latents, noise, t), t, self.noise_scheduler, train, v, weights
        )

    def use_zero_terminal_snr(self) -> None:
        """Rescale the training schedule's betas so the last timestep has SNR 0 (diffusers' own rescale)."""
        self.noise_scheduler = DDPMScheduler.from_config(
            self.noise_scheduler.config, rescale_betas_zero_snr=True
        )
        if self.prediction_type != "v_prediction":
            log.warning(
                "zero_terminal_snr is on for an epsilon-prediction model: at the last timestep there is no "
                "image left to see; it is meant for v-prediction (prediction_type: v_prediction)"
            )

    def _te_trainable(self) -> bool:
        return any(p.requires_grad for p in self.text_encoder.parameters())

    # --- the model's own operations ----------------------------------------------------------------
    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """[batch, 77] token ids, or [batch, chunks, 77] with max_token_length (models/long_prompts.py)."""
        if getattr(self, "max_token_length", None):
            return chunked_ids(self.tokenizer, captions, self.max_token_length)
        return self.tokenizer(
            captions,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    def encode_prompt(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The text encoder's last hidden states, or with clip_skip N the N-th from the end through the
        final layer norm (as kohya, WebUI and diffusers' pipelines read it)."""
        ids = input_ids.to(self.text_encoder.device)
        if ids.dim() == 3:  # chunks of a long caption: encoded one by one, joined again
            return joined_states(self.encode_prompt(ids.reshape(-1, ids.shape[-1])), ids.shape[0])
        skip = getattr(self, "clip_skip", 1)
        if skip <= 1:
            return self.text_encoder(ids)[0]
        hidden = self.text_encoder(ids, output_hidden_states=True).hidden_states[-skip]
        return _final_norm(_unwrap(self.text_encoder))(hidden)

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # a float32 VAE with autocast off: under the trainer's autocast its convs would still run in fp16,
        # where SDXL's VAE overflows to NaN (the fp16-fix VAE is the other way out); samples decode the same
        # way (render.vae_without_autocast)
        own_dtype = torch.autocast(self.vae.device.type, enabled=False) if self.vae_float32 else None
        with own_dtype or contextlib.nullcontext():
            pixels = pixels.to(self.vae.device, self.vae.dtype)
            latents = self.vae.encode(pixels).latent_dist.sample(generator=generator)
        return latents * self.vae.config.scaling_factor

    def predict(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, cond: torch.Tensor, sizes: torch.Tensor
    ) -> torch.Tensor:
        """The UNet's output; `sizes` [b, 6] are each image's size/crop facts (data.size_conditioning),
        which SD 1.x/2.x do not condition on."""
        return self.unet(noisy, timesteps, cond).sample

    def target(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        return noise

    # --- protocol: samples and metadata --------------------------------------------------------------
    def render(self, requests: list[RenderRequest]) -> list[Image.Image]:
        pipe = self.pipeline(**{a: _unwrap(getattr(self, a)) for a in self.COMPONENTS.values()})
        pipe.set_progress_bar_config(disable=True)
        skip = getattr(self, "clip_skip", 1)
        with brought_back(self, self.parked, self.device):
            return [render_one(pipe, replace(request, clip_skip=skip)) for request in requests]

    def pipeline(self, unet=None, text_encoder=None) -> StableDiffusionPipeline:
        """An inference pipeline sharing this model's (possibly LoRA-injected) modules."""
        from diffusers import EulerDiscreteScheduler

        # the base model's own schedule, also under zero_terminal_snr (which rescales training's only, as
        # kohya does): samples should look as the LoRA will in WebUI/ComfyUI
        scheduler = EulerDiscreteScheduler.from_config(self.parts.noise_scheduler.config)
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

    def single_file_tensors(self) -> dict[str, torch.Tensor]:
        """The model as an LDM single-file state dict (`lora merge` writes merged weights back with it)."""
        from .ldm_layout import pipeline_to_ldm

        parts = (self.unet, self.vae, self.text_encoder)
        return pipeline_to_ldm(*(_unwrap(p).state_dict() for p in parts), self.family)

    def metadata_facts(self) -> dict[str, str]:
        v = self.prediction_type == "v_prediction"
        sd2 = self.family == "sd2"
        arch = "stable-diffusion-v1"
        if sd2:
            arch = "stable-diffusion-v2-768-v" if v else "stable-diffusion-v2-512"
        return {
            "ss_v2": str(sd2),
            # kohya: "sd_v1" / "sd_v2", with "_v" appended for v-prediction models.
            "ss_base_model_version": ("sd_v2" if sd2 else "sd_v1") + ("_v" if v else ""),
            "ss_v_parameterization": str(v),
            "modelspec.architecture": f"{arch}/lora",
            "modelspec.prediction_type": "v" if v else "epsilon",
        }


def _final_norm(encoder: nn.Module) -> nn.Module:
    """CLIP's final layer norm: under .text_model before transformers 5, on the model itself since."""
    return getattr(encoder, "text_model", encoder).final_layer_norm


def _unwrap(module: nn.Module) -> nn.Module:
    """The bare module under accelerate/DDP/torch.compile wrappers (samples need the real class)."""
    while hasattr(module, "module") or hasattr(module, "_orig_mod"):
        module = getattr(module, "module", None) or module._orig_mod
    return module
