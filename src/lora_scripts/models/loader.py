"""SD 1.x/2.x: load the base model's parts (UNet, VAE, CLIP, tokenizer, noise scheduler) from any source."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ..config import ModelConfig
from ..errors import ModelError
from . import ldm_configs
from .detect import locate, read_checkpoint
from .tokenizer import clip_tokenizer

log = logging.getLogger(__name__)


@dataclass
class Components:
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    noise_scheduler: DDPMScheduler
    family: str
    prediction_type: str
    source: str


def load_components(cfg: ModelConfig, family: str | None = None) -> Components:
    """The parts of an SD 1.x/2.x base model; `family` as detected by models/registry (detected here when
    None, for the tools that load a base model directly)."""
    source = locate(cfg.base_model, cfg.allow_pickle)
    if family is None:
        from .registry import detect_family  # registry imports this module's family: import at call time

        family = detect_family(source).info.name
    log.info("Loading base model %s (%s)", source.location, source.kind.replace("_", " "))
    if source.kind == "single_file":
        parts = _from_single_file(source.location, family)
    else:
        parts = _from_pretrained(source.location, local_only=source.kind == "diffusers")
    if cfg.model_family != "auto":
        parts["family"] = cfg.model_family
    family = parts.pop("family")
    prediction = parts.pop("prediction", None)
    if cfg.prediction_type != "auto":
        prediction = cfg.prediction_type
    prediction = prediction or ("v_prediction" if family == "sd2" else "epsilon")
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, clip_sample=False, prediction_type=prediction, **ldm_configs.SCALED_LINEAR
    )
    log.info("Model family %s, prediction type %s", family, prediction)
    return Components(
        noise_scheduler=scheduler, family=family, prediction_type=prediction, source=source.location, **parts
    )


def _from_single_file(path: str, family: str) -> dict[str, Any]:
    sd = read_checkpoint(path)
    groups = ldm_configs.norm_groups(path)
    with single_file_errors(path, "an SD 1.x/2.x model", groups):
        unet_cfg = ldm_configs.unet_config(family, sd, groups)
        with init_empty_weights():  # skip random init: the file provides every weight
            unet = UNet2DConditionModel(**unet_cfg)
        _load(unet, convert_ldm_unet_checkpoint(sd, unet.config), "UNet", path)
        with init_empty_weights():
            vae = AutoencoderKL(**ldm_configs.vae_config(sd, groups))
        _load(vae, convert_ldm_vae_checkpoint(sd, vae.config), "VAE", path)
        text_encoder = text_encoder_from(family, sd, path)
    tokenizer = clip_tokenizer("<|endoftext|>" if family == "sd1" else "!")
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "family": family}


@contextmanager
def single_file_errors(path: str, kind: str, groups: int) -> Iterator[None]:
    """A single file's missing weight or GroupNorm-incompatible widths as one sentence (any family)."""
    try:
        yield
    except KeyError as exc:
        raise ModelError(
            f"'{path}' is missing the weight {exc.args[0]}; the file is incomplete or not {kind}",
            "Download the checkpoint again",
        ) from exc
    except ValueError as exc:
        if "divisible by num_groups" not in str(exc):  # torch's GroupNorm check, the one meant here
            raise
        raise ModelError(
            f"'{path}' has layers whose widths cannot be split into {groups} GroupNorm groups ({exc})",
            f"A small custom model must name its group count in the safetensors header "
            f"({ldm_configs.NORM_GROUPS_KEY}), as assets/demo-base/demo-base.safetensors does",
        ) from exc


def text_encoder_from(
    family: str, sd: dict, path: str, prefix: str | None = None, with_projection: bool = False
) -> CLIPTextModel:
    """The text encoder of an LDM/SGM single file: "sd1" a CLIP, "sd2" an OpenCLIP (packed in_proj), under
    `prefix` when not SD's own (SDXL holds one of each); `with_projection` keeps OpenCLIP's text projection
    (SDXL's pooled output), sized from the file."""
    config = ldm_configs.text_config(family, sd, prefix)
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    if with_projection:
        config["projection_dim"] = int(sd[(prefix or "cond_stage_model.model.") + "text_projection"].shape[1])
    with init_empty_weights():
        model = model_class(CLIPTextConfig(**config))
    if family == "sd1":
        weights = convert_ldm_clip_checkpoint(sd, remove_prefix=prefix)
    else:
        weights = convert_open_clip_checkpoint(model, sd, prefix=prefix or "cond_stage_model.model.")
    own = set(model.state_dict())
    # transformers >= 5.6 flattened CLIPTextModel (no `text_model.` level); LDM files always have it.
    if not any(k.startswith("text_model.") for k in own):
        weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
    # Keep what the model has: drops SD2's unused last OpenCLIP block and buffers like position_ids.
    weights = {k: v for k, v in weights.items() if k in own}
    _load(model, weights, "text encoder", path)
    return model


def _load(module: torch.nn.Module, weights: dict, what: str, path: str) -> None:
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    missing, _unexpected = module.load_state_dict(weights, strict=False, assign=True)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ModelError(
            f"The {what} in '{path}' does not match an SD model: {len(missing)} weights missing "
            f"(first: {missing[0]})",
            "The file may be damaged or of an unsupported model family",
        )


def _from_pretrained(location: str, local_only: bool) -> dict[str, Any]:
    kwargs = {"local_files_only": local_only}
    try:
        unet = UNet2DConditionModel.from_pretrained(location, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(location, subfolder="vae", **kwargs)
        text_encoder = CLIPTextModel.from_pretrained(location, subfolder="text_encoder", **kwargs)
        tokenizer = CLIPTokenizer.from_pretrained(location, subfolder="tokenizer", **kwargs)
        prediction = DDPMScheduler.load_config(location, subfolder="scheduler", **kwargs).get(
            "prediction_type"
        )
    except OSError as exc:
        where = "folder" if local_only else "hub model"
        raise ModelError(
            f"Could not load the diffusers {where} '{location}': {str(exc).splitlines()[0]}",
            "Check that it has unet/, vae/, text_encoder/, tokenizer/ and scheduler/ subfolders"
            if local_only
            else "Check the id and your internet connection, or download it and use the folder",
        ) from exc
    family = text_family(text_encoder.config.hidden_size, text_encoder.config.hidden_act)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "family": family,
        "prediction": prediction,
    }


def text_family(hidden_size: int, hidden_act: str = "quick_gelu") -> str:
    """SD 1.x uses CLIP ViT-L (768 wide, quick_gelu), SD 2.x OpenCLIP ViT-H (1024 wide, gelu)."""
    return "sd2" if hidden_size == 1024 or hidden_act == "gelu" else "sd1"
