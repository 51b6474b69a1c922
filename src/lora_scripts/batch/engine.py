"""One pipeline for the whole job: LoRAs fused once when every item uses the same mix (else generate's
stack, switched per batch), prompts batched, each prompt's text-encoder output computed once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig
from ..errors import ConfigError, FormatError
from ..generate.library import LoraLibrary
from ..generate.stack import LoraStack
from ..models.render import make_scheduler
from .items import Work, mix_of

log = logging.getLogger(__name__)
Mix = tuple[tuple[str, float], ...]


class Engine:
    def __init__(self, job, library: LoraLibrary, mixes: set[Mix], device: str, dtype: torch.dtype):
        from ..models.registry import load_model

        model = load_model(
            ModelConfig(base_model=job.base_model, prediction_type=job.prediction_type, vae=job.vae)
        )
        if model.info.sample_kind != "image":
            raise ConfigError(
                f"'{job.base_model}' is a language model, not an image model", "Use an SD model"
            )
        self.model_name = Path(model.parts.source).stem
        self.vae_name = Path(job.vae).name if job.vae else None  # WebUI's `VAE: name` in each PNG
        self.fused: Mix | None = None
        self.stack: LoraStack | None = None
        names = sorted({name for mix in mixes for name, _ in mix})
        if len(mixes) == 1 and names:
            self.fused = _fuse(model, library, next(iter(mixes)))
        if self.fused is None and names:  # several mixes (or LyCORIS): generate's hooks, set per batch
            self.stack = LoraStack(model.adapter_modules(), model.info.name, library)
            self.stack.load(names)
        self.pipe = model.pipeline().to(device, dtype)
        if device.startswith("cuda"):
            self.pipe.unet.to(memory_format=torch.channels_last)
        if job.compile:  # shapes are fixed per job: dynamic=False compiles once per batch size
            log.info("Compiling the UNet (torch.compile): the first batch takes a minute or more")
            self.pipe.unet = torch.compile(self.pipe.unet, dynamic=False)
        self.pipe.set_progress_bar_config(disable=True)
        self.device, self.sdxl = device, "text_encoder_2" in self.pipe.components
        self.cache: OrderedDict = OrderedDict()
        self.encoded = 0  # text-encoder calls (the cache's effect, for tests and the bench)
        self.lora_hashes: dict[str, str] = {}

    def render(self, works: list[Work]) -> list[np.ndarray]:
        """Images (H x W x 3 floats in 0..1) for works that share one LoRA mix and the job's settings."""
        spec = works[0].spec
        if self.stack is not None:
            self.stack.activate(spec.loras)
        mix = mix_of(spec)
        pos = [self._encode(w.spec.prompt, mix) for w in works]
        neg = [self._negative(w.spec.negative_prompt, mix, p) for w, p in zip(works, pos, strict=True)]
        kwargs = {"prompt_embeds": torch.cat([p[0] for p in pos])}
        if spec.cfg_scale > 1:
            kwargs["negative_prompt_embeds"] = torch.cat([n[0] for n in neg])
        if self.sdxl:
            kwargs["pooled_prompt_embeds"] = torch.cat([p[1] for p in pos])
            kwargs["negative_pooled_prompt_embeds"] = torch.cat([n[1] for n in neg])
        self.pipe.scheduler = make_scheduler(spec.sampler, self.pipe.scheduler.config)  # fresh state
        out = self.pipe(
            **kwargs,
            num_inference_steps=spec.steps,
            guidance_scale=spec.cfg_scale,
            width=spec.width,
            height=spec.height,
            generator=[torch.Generator("cpu").manual_seed(w.spec.seed) for w in works],
            output_type="np",
        )
        return list(out.images)

    @torch.no_grad()
    def _encode(self, text: str, mix: Mix) -> tuple:
        """One prompt alone (so its output never depends on its batch neighbours), cached by (text, mix)."""
        key = (text, mix)
        if key not in self.cache:
            self.encoded += 1
            got = self.pipe.encode_prompt(
                prompt=text, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
            )
            self.cache[key] = (got[0], got[2]) if self.sdxl else (got[0],)
            if len(self.cache) > 512:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return self.cache[key]

    def _negative(self, text: str, mix: Mix, positive: tuple) -> tuple:
        """As diffusers: SDXL (force_zeros_for_empty_prompt) uses zeros for an empty negative prompt."""
        if not text and self.sdxl and self.pipe.config.get("force_zeros_for_empty_prompt", False):
            return tuple(torch.zeros_like(t) for t in positive)
        return self._encode(text, mix)

    def close(self) -> None:
        if self.stack is not None:
            self.stack.close()


def _fuse(model, library: LoraLibrary, mix: Mix) -> Mix | None:
    """Bake the one mix into the weights once, with `lora merge`'s code (diffusers' load_lora_weights does
    not read our kohya text-encoder keys on the family's pipeline, so its fuse_lora cannot be used here)."""
    from ..tools.lora_io import read_lora
    from ..tools.merge import merge_into

    try:
        loras = [(read_lora(library.find(name)), weight) for name, weight in mix]  # all before any merge
    except FormatError as err:  # LoHa/LoKr: merge cannot bake them; generate's stack applies them
        log.info("Not fused (%s): applied per batch instead", err.what)
        return None
    merge_into(model.adapter_modules(), model.info.name, loras, Path(model.parts.source).name)
    log.info("LoRAs fused into the weights once: %s", ", ".join(f"{n} x{w:g}" for n, w in mix))
    return mix
