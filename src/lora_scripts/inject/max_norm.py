"""kohya's max-norm regularisation (`scale_weight_norms`), on peft's LoRA layers.

After each optimiser step, each module's whole update ΔW = up @ down * alpha/rank (a 3x3 conv's as the conv
of its two kernels) is measured; where its Frobenius norm is above the maximum, up and down are each scaled by
sqrt(max / norm), so ΔW's norm becomes the maximum. As kohya's networks/lora.py
apply_max_norm_regularization, including its statistics: the modules scaled, and the mean and largest norm
after scaling. Hand-written: peft has no such verb. Defined for a plain up/down pair only: LoHa, LoKr and DoRA
(whose update also holds a magnitude) are refused by the config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .dora import dora_scale_of
from .lora import ADAPTER, lora_layers
from .lyco import is_lyco_layer


@dataclass(frozen=True)
class NormStats:
    keys_scaled: int  # modules whose update was scaled down at this step
    mean_norm: float  # mean Frobenius norm of the modules' updates, after scaling
    max_norm: float  # the largest of them

    def logs(self) -> dict[str, float]:
        """kohya's tracker names (TensorBoard; the progress events take them too)."""
        return {
            "max_norm/keys_scaled": self.keys_scaled,
            "norm/avg_key_norm": self.mean_norm,
            "max_norm/max_key_norm": self.max_norm,
        }

    def sentence(self) -> str:
        """The end of a step's log line, as kohya's progress bar shows them."""
        return f", keys scaled {self.keys_scaled}, average key norm {self.mean_norm:.4f}"


def lora_delta(down: torch.Tensor, up: torch.Tensor, scale: float) -> torch.Tensor:
    """The module's update in the base weight's shape: up @ down (linear and 1x1 convs), or for a kxk conv
    the conv of down's kernel with up's 1x1 ([out, in, k, k]), times scale (alpha/rank)."""
    if down.dim() == 4 and down.shape[2:] == (1, 1) and up.shape[2:] == (1, 1):
        delta = (up.flatten(1) @ down.flatten(1))[:, :, None, None]
    elif down.dim() == 4:
        delta = F.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3)
    else:
        delta = up @ down
    return delta * scale


@torch.no_grad()
def apply_max_norm(modules: Iterable[nn.Module], max_norm: float) -> NormStats:
    """Scale every LoRA module of `modules` whose update's norm exceeds `max_norm` back to it (in place)."""
    norms, scaled = [], 0
    for module in modules:
        for name, layer in lora_layers(module).items():
            down, up = _pair(name, layer)
            norm = lora_delta(down.float(), up.float(), layer.scaling[ADAPTER]).norm()
            floor = norm.clamp(min=max_norm / 2)  # kohya's clamp: a small norm gives ratio 1 exactly
            ratio = floor.clamp(max=max_norm) / floor
            if ratio != 1:
                scaled += 1
                down.mul_(ratio.sqrt().to(down.dtype))
                up.mul_(ratio.sqrt().to(up.dtype))
            norms.append((norm * ratio).item())
    if not norms:
        return NormStats(0, 0.0, 0.0)
    return NormStats(scaled, sum(norms) / len(norms), max(norms))


def _pair(name: str, layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(down, up) weights of a plain LoRA layer; any other kind (an init_lora of LoHa/LoKr/DoRA) refused."""
    magnitude = getattr(layer, "lora_magnitude_vector", None) or {}
    if is_lyco_layer(layer) or ADAPTER in magnitude or dora_scale_of(layer, ADAPTER) is not None:
        raise ConfigError(
            f"scale_weight_norms works on LoRA/LoCon layers only, but layer '{name}' is LoHa, LoKr or DoRA "
            "(from network_type or init_lora)",
            "Remove scale_weight_norms, or train a plain LoRA",
        )
    return layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
