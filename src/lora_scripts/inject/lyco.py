"""LyCORIS network types (LoHa, LoKr) trained through peft's own layers, and their weights in the
trainer-neutral form the kohya file is made from.

The tensor names are LyCORIS's (`hada_w1_a`..., `lokr_w1`...), which peft's parameters also carry, and the
weight change is computed with the clients' rule (A1111's network_hada/network_lokr, ComfyUI's
weight_adapter): LoHa (w1a @ w1b) * (w2a @ w2b), LoKr kron(w1, w2), reshaped to the layer's weight, scaled
by alpha / dim where dim is the rank of a low-rank factor; a LoKr with no low-rank factor is scaled by 1,
so its scale is folded into lokr_w2 when it is saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoHaConfig, LoKrConfig
from peft.tuners.loha.layer import LoHaLayer
from peft.tuners.lokr.layer import LoKrLayer
from torch import nn

KINDS = {"loha": "hada_", "lokr": "lokr_"}  # network type -> prefix of its tensors
CONFIGS = {"loha": LoHaConfig, "lokr": LoKrConfig}
LAYERS = {"loha": LoHaLayer, "lokr": LoKrLayer}


@dataclass
class LycoWeights:
    """One module's LoHa or LoKr: its LyCORIS tensors and kohya's alpha (scale = alpha / dim)."""

    kind: str  # "loha" | "lokr"
    tensors: dict[str, torch.Tensor]  # hada_w1_a, ... / lokr_w1, lokr_w2_a, ...
    alpha: float
    shape: tuple[int, ...]  # the weight it changes: (out, in) or (out, in, kh, kw)

    @property
    def dim(self) -> int | None:
        """The rank clients divide alpha by: a low-rank factor's, None for a LoKr of full factors."""
        t = self.tensors
        if self.kind == "loha":
            return int(t["hada_w1_b"].shape[0])
        for key in ("lokr_w2_b", "lokr_w1_b"):
            if key in t:
                return int(t[key].shape[0])
        return None

    @property
    def scale(self) -> float:
        return self.alpha / self.dim if self.dim else 1.0

    @property
    def rank(self) -> int:
        """dim, or min(out, in) for a LoKr of full factors: the rank peft's r and ss_network_dim take."""
        return self.dim or min(self.shape[:2])

    @property
    def kernel(self) -> tuple[int, ...]:
        """() for a linear layer (or a conv known only as (out, in * kh * kw)), (kh, kw) for a conv."""
        return tuple(self.shape[2:])

    @property
    def in_features(self) -> int:
        """The weight's second size: a linear layer's input width (family detection)."""
        return int(self.shape[1])

    def delta(self) -> torch.Tensor:
        """The weight change a client applies at weight 1.0, in the layer's weight shape (float32)."""
        t = {k: v.float() for k, v in self.tensors.items()}
        if self.kind == "loha":
            full = (t["hada_w1_a"] @ t["hada_w1_b"].flatten(1)) * (t["hada_w2_a"] @ t["hada_w2_b"].flatten(1))
        else:
            w1 = t["lokr_w1"] if "lokr_w1" in t else t["lokr_w1_a"] @ t["lokr_w1_b"]
            w2 = t["lokr_w2"] if "lokr_w2" in t else t["lokr_w2_a"] @ t["lokr_w2_b"]
            if w2.dim() == 4:
                w1 = w1[:, :, None, None]
            full = torch.kron(w1, w2.contiguous())
        return full.reshape(self.shape) * self.scale


def lyco_kind(parts) -> str | None:
    """ "loha" / "lokr" for a module whose tensor parts are LyCORIS's (hada_..., lokr_...), else None."""
    return next((kind for kind, prefix in KINDS.items() if any(p.startswith(prefix) for p in parts)), None)


def lyco_config(kind: str, target_modules: str, rank: int, alpha: float, rank_pattern, alpha_pattern):
    """peft's LoHa/LoKr config for exactly these modules (conv layers in LyCORIS's plain layout)."""
    return CONFIGS[kind](
        r=rank,
        alpha=alpha,
        target_modules=target_modules,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        use_effective_conv2d=False,  # no hada_t1/lokr_t2 Tucker cores: the layout every client reads
    )


def is_lyco_layer(module: nn.Module) -> bool:
    return isinstance(module, tuple(LAYERS.values()))


def read_lyco(layer: nn.Module, adapter: str) -> LycoWeights:
    kind = next(k for k, cls in LAYERS.items() if isinstance(layer, cls))
    tensors = {
        name: getattr(layer, name)[adapter].detach()
        for name in layer.adapter_layer_names
        if adapter in getattr(layer, name)
    }
    shape = tuple(layer.get_base_layer().weight.shape)
    rank, scaling = layer.r[adapter], float(layer.scaling[adapter])
    w = LycoWeights(kind, tensors, scaling * rank, shape)
    if w.dim is None:  # clients scale a LoKr without low-rank factors by 1: fold peft's scale into w2
        w.tensors["lokr_w2"] = tensors["lokr_w2"] * scaling
    return w


@torch.no_grad()
def write_lyco(layer: nn.Module, adapter: str, w: LycoWeights) -> None:
    scaling, tensors = w.scale, dict(w.tensors)
    if w.dim is None and w.alpha:  # read_lyco's fold undone, so the file's alpha survives a read back
        scaling = w.alpha / layer.r[adapter]
        tensors["lokr_w2"] = tensors["lokr_w2"] / scaling
    for name, value in tensors.items():
        getattr(layer, name)[adapter].copy_(value)
    layer.scaling[adapter] = scaling


def lyco_shape(w: LycoWeights) -> tuple[int, ...]:
    """The weight shape the factors make, as far as they tell it: (out, in) for a linear layer, for a conv
    (out, in * kh * kw) unless a 4-d lokr_w2 gives the kernel (the layer it is applied to settles it)."""
    t = w.tensors
    if w.kind == "loha":
        return (int(t["hada_w1_a"].shape[0]), int(t["hada_w1_b"].flatten(1).shape[1]))
    w1 = tuple(t["lokr_w1"].shape) if "lokr_w1" in t else (t["lokr_w1_a"].shape[0], t["lokr_w1_b"].shape[1])
    w2 = tuple(t["lokr_w2"].shape) if "lokr_w2" in t else (t["lokr_w2_a"].shape[0], t["lokr_w2_b"].shape[1])
    return (int(w1[0] * w2[0]), int(w1[1] * w2[1]), *w2[2:])


LYCO_NAMES = {"loha": "LoHa", "lokr": "LoKr"}


def missing_lyco_parts(kind: str, parts: set[str]) -> list[str]:
    """The tensors a client needs that `parts` lacks (a LoKr factor is whole or an a/b pair)."""
    if kind == "loha":
        return sorted({"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"} - parts)
    return [
        f"{w} or {w}_a/{w}_b"
        for w in ("lokr_w1", "lokr_w2")
        if w not in parts and not {f"{w}_a", f"{w}_b"} <= parts
    ]
