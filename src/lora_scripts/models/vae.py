"""A VAE other than the base model's (kohya's `vae`): the files people keep in WebUI's models/VAE
(vae-ft-mse-840000-ema-pruned, sdxl-vae-fp16-fix: LDM keys `encoder.down.0...`, maybe under
`first_stage_model.`), diffusers VAE files (`encoder.down_blocks.0...`) and diffusers VAE folders.
It takes the base VAE's architecture and scaling factor: VAEs of one family differ only in their weights."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

from ..errors import ModelError
from .detect import PICKLE_SUFFIXES, check_vae, read_checkpoint

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


def with_vae(parts, vae: str | None, allow_pickle: bool = False):
    """``parts`` (a family's loaded components, a dataclass with a ``vae``) with the VAE at ``vae``."""
    if not vae:
        return parts
    return dataclasses.replace(parts, vae=load_vae(vae, parts.vae, allow_pickle))


def load_vae(path: str, like: AutoencoderKL, allow_pickle: bool = False) -> AutoencoderKL:
    """The VAE at ``path`` in ``like``'s architecture, dtype and scaling factor; one sentence when it is
    missing, unreadable or does not fit."""
    check_vae(path, allow_pickle)  # generate and batch refused a pickle before, in their own words
    where = Path(path)
    if where.is_dir():
        return _from_folder(where, like)
    if where.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelError(
            f"VAE '{path}' is not a .safetensors file",
            "Give the VAE's .safetensors file (or a diffusers folder)",
        )
    log.info("VAE %s instead of the base model's", path)
    try:
        tensors = read_checkpoint(str(where))
    except ModelError as exc:  # its sentence names a base model
        raise ModelError(
            f"VAE '{path}' cannot be read (it may be truncated or not a VAE)", "Download it again"
        ) from exc
    if any(key.split(".")[0] in ("first_stage_model", "vae") or ".down." in key for key in tensors):
        tensors = convert_ldm_vae_checkpoint(tensors, like.config)  # WebUI's files: LDM names
    vae = AutoencoderKL.from_config(like.config)
    _fit(vae, tensors, path)
    return vae.to(like.dtype).requires_grad_(False)


def _from_folder(folder: Path, like: AutoencoderKL) -> AutoencoderKL:
    root = folder / "vae" if (folder / "vae" / "config.json").is_file() else folder
    if not (root / "config.json").is_file():
        raise ModelError(
            f"VAE folder '{folder}' has no config.json (nor vae/config.json)",
            "Give a diffusers VAE folder or the VAE's .safetensors file",
        )
    log.info("VAE %s instead of the base model's", root)
    try:
        loaded = AutoencoderKL.from_pretrained(root, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"VAE folder '{folder}' cannot be loaded ({exc})", "Download it again") from exc
    vae = AutoencoderKL.from_config(like.config)  # the base's scaling factor, as kohya keeps it
    _fit(vae, loaded.state_dict(), str(folder))
    return vae.to(like.dtype).requires_grad_(False)


def _fit(vae: AutoencoderKL, tensors: dict[str, torch.Tensor], path: str) -> None:
    own = vae.state_dict()
    missing = [k for k in own if k not in tensors]
    wrong = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise ModelError(
            f"VAE '{path}' does not fit the base model's VAE ({len(missing)} tensors missing, {len(wrong)} "
            f"of another shape, e.g. '{first}')",
            "Give a VAE made for this base model's family (an SD 1.x/2.x or an SDXL VAE)",
        )
    vae.load_state_dict({k: tensors[k] for k in own})


def encoder_id(vae: AutoencoderKL) -> str:
    """What made a cached latent: the VAE encoder's weights (a few small tensors of it, hashed) and dtype.
    A VAE with another encoder gets other cache entries; one that only retrained its decoder (ft-mse) does
    not need them."""
    digest, weights = hashlib.sha1(str(vae.dtype).encode()), vae.state_dict()
    for name in ("encoder.conv_in.weight", "encoder.conv_out.weight", "quant_conv.weight"):
        tensor = weights.get(name)
        if tensor is not None:
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]
