"""Several LoRAs on one base model at once, each with its own weight, switchable between images.

Hand-written forward hooks instead of peft/diffusers adapters (one line why): the base weights are never
touched, so weight 0 (or no LoRA) is the base model bit for bit, and stacked LoRAs add exactly:
`y = base(x) + sum_i weight_i * alpha_i/rank_i * up_i(down_i(x))` (a LoHa/LoKr adds its whole weight
change, computed once: `weight_i * conv_or_linear(x, delta_i)`; so does a DoRA, whose change depends on the
base weight: delta_i = W'_i - W as A1111/ComfyUI compute it, W + weight_i * (W'_i - W) in all; each DoRA
against the base weight itself, so the order of the files does not matter, as in `lora merge`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..inject.dora import dora_delta
from ..inject.lora import LoraWeights
from ..inject.lyco import LycoWeights
from ..save.lora_read import load_lora, target_modules
from .library import LoraLibrary, short_hash
from .prompts import LoraRef

log = logging.getLogger(__name__)


@dataclass
class _Delta:
    down: torch.Tensor | None
    up: torch.Tensor | None
    scale: float  # alpha / rank
    full: torch.Tensor | None = None  # LoHa/LoKr: the whole weight change (scale included), in weight shape


class LoraStack:
    """LoRA files applied to a pipeline's UNet and text encoder(s) through forward hooks."""

    def __init__(self, models: dict[str, nn.Module], family: str, library: LoraLibrary):
        """`models`: the pipeline's modules by the family's component names (TrainableModel.adapter_modules:
        {"unet", "te"} for SD 1.x/2.x, {"unet", "te1", "te2"} for SDXL)."""
        self.models = dict(models)
        self.family, self.library = family, library
        self.files: dict[str, Path] = {}
        self._hashes: dict[str, str] = {}
        self.weights: dict[str, float] = {}
        self._deltas: dict[nn.Module, dict[str, _Delta]] = {}
        self._handles: list = []

    def load(self, names: list[str]) -> None:
        """Find, read and check every named LoRA now, so a bad one stops the run before any image."""
        for name in names:
            if name not in self.files:
                path = self.library.find(name)
                self._add(name, load_lora(path, self.models, self.family))
                self.files[name] = path
                log.info("LoRA %s: %s", name, path)

    def activate(self, loras: tuple[LoraRef, ...] | list[LoraRef]) -> None:
        """Use exactly these LoRAs at these weights for the next images (weight 0 = not applied)."""
        self.load([ref.name for ref in loras])
        self.weights = {ref.name: ref.weight for ref in loras if ref.weight != 0}

    def hashes(self, loras: tuple[LoraRef, ...]) -> dict[str, str]:
        """WebUI's `Lora hashes` for these LoRAs (file hashes, computed once per file)."""
        for ref in loras:
            if ref.name in self.files and ref.name not in self._hashes:
                self._hashes[ref.name] = short_hash(self.files[ref.name])
        return {ref.name: self._hashes[ref.name] for ref in loras if ref.name in self._hashes}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._deltas.clear()

    def _add(self, name: str, parts: dict[str, dict[str, LoraWeights]]) -> None:
        for component, weights in parts.items():
            modules = target_modules(self.models[component])
            for module_path, w in weights.items():
                module = modules[module_path]
                ref = module.weight
                if module not in self._deltas:
                    self._deltas[module] = {}
                    self._handles.append(module.register_forward_hook(self._hook))
                full = _full_delta(w, ref)
                if full is not None:  # no low-rank path: apply its delta as a weight of its own
                    self._deltas[module][name] = _Delta(None, None, 1.0, full.to(ref.device, ref.dtype))
                    continue
                self._deltas[module][name] = _Delta(
                    down=w.down.to(ref.device, ref.dtype),
                    up=w.up.to(ref.device, ref.dtype),
                    scale=w.alpha / w.down.shape[0],
                )

    def _hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        active = [(d, self.weights[n]) for n, d in self._deltas[module].items() if n in self.weights]
        if not active:
            return None  # output untouched: the base model bit for bit
        x = inputs[0]
        for delta, weight in active:
            output = output + _low_rank(module, x, delta) * (delta.scale * weight)
        return output


def _full_delta(w: LoraWeights | LycoWeights, base: torch.Tensor) -> torch.Tensor | None:
    """The whole weight change of a LoHa/LoKr or a DoRA (against `base`); None for a plain LoRA."""
    if isinstance(w, LycoWeights):
        return w.delta()
    if w.dora_scale is None:
        return None
    with torch.no_grad():  # per input column or per output row, as the file's dora_scale is laid out
        return dora_delta(base, w.down, w.up, w.alpha / w.down.shape[0], w.dora_scale)


def _low_rank(module: nn.Module, x: torch.Tensor, delta: _Delta) -> torch.Tensor:
    if delta.full is not None:
        if isinstance(module, nn.Conv2d):
            return F.conv2d(
                x, delta.full, stride=module.stride, padding=module.padding, dilation=module.dilation
            )
        return F.linear(x, delta.full)
    if isinstance(module, nn.Conv2d):
        hidden = F.conv2d(
            x, delta.down, stride=module.stride, padding=module.padding, dilation=module.dilation
        )
        return F.conv2d(hidden, delta.up)
    return F.linear(F.linear(x, delta.down), delta.up)
