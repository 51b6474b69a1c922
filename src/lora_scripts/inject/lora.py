"""Put LoRA layers into the base model with peft, and read/write their weights by module name."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from torch import nn

from ..config import NetworkConfig
from ..models.targets import text_targets, unet_targets
from .dora import add_column_dora, dora_scale_of
from .lyco import KINDS, LYCO_NAMES, LycoWeights, is_lyco_layer, lyco_config, read_lyco, write_lyco

ADAPTER = "default"


@dataclass
class LoraWeights:
    """One module's LoRA, in the trainer-neutral form both file formats are made from."""

    down: torch.Tensor  # peft lora_A / kohya lora_down
    up: torch.Tensor  # peft lora_B / kohya lora_up
    alpha: float
    magnitude: torch.Tensor | None = None  # DoRA: peft lora_magnitude_vector (the new weight's row norms)
    dora_scale: torch.Tensor | None = None  # kohya/LyCORIS DoRA: per input column, [1, in] or [1, in, 1, 1]

    @property
    def rank(self) -> int:
        """The module's rank (peft's r, ss_network_dim), asked of LoRA and LoHa/LoKr weights alike."""
        return int(self.down.shape[0])

    @property
    def kernel(self) -> tuple[int, ...]:
        """() for a linear layer, (kh, kw) for a conv: a module's kernel without reading its factors."""
        return tuple(self.down.shape[2:])

    @property
    def in_features(self) -> int | None:
        """The layer's input width (family detection); None for a foreign down weight with no input axis."""
        return int(self.down.shape[1]) if self.down.dim() >= 2 else None


KIND_NAMES = {"lora": "LoRA", "dora": "DoRA", **LYCO_NAMES}  # network kind -> what users call it


def network_kind(w: LoraWeights | LycoWeights) -> str:
    """lora, dora, loha or lokr: the network type a module's weights are of (inject's `kind`)."""
    if isinstance(w, LycoWeights):
        return w.kind
    return "dora" if w.dora_scale is not None else "lora"


def rank_counts(weights: Iterable[LoraWeights | LycoWeights]) -> tuple[Counter, Counter]:
    """How many modules have each (rank, alpha): linear (and 1x1 conv) modules, then 3x3 convs. A LoKr of
    full factors has no rank of its own (its size is the layer's, whatever lora_rank was), so it is counted
    only when no module has a low-rank pair."""
    weights = list(weights)
    stated = [w for w in weights if not isinstance(w, LycoWeights) or w.dim is not None]
    linear: Counter = Counter()
    conv: Counter = Counter()
    for w in stated or weights:
        spatial = w.kernel not in ((), (1, 1))
        (conv if spatial else linear)[(w.rank, w.alpha)] += 1
    return linear, conv


def lora_config(
    ranks: dict[str, int],
    alphas: dict[str, float],
    dropout: float = 0.0,
    use_rslora: bool = False,
    use_dora: bool = False,
) -> LoraConfig:
    """A peft config for exactly these modules, each with its own rank and alpha."""
    names = sorted(ranks)
    rank = max(set(ranks.values()), key=list(ranks.values()).count)
    alpha = max(set(alphas.values()), key=list(alphas.values()).count)
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        # a string is full-matched against module names: exactly these modules, nothing by accident.
        target_modules="|".join(re.escape(n) for n in names),
        rank_pattern={re.escape(n): r for n, r in ranks.items() if r != rank},
        alpha_pattern={re.escape(n): a for n, a in alphas.items() if a != alpha},
        init_lora_weights=True,
        use_rslora=use_rslora,  # scaling alpha/sqrt(r) instead of alpha/r
        use_dora=use_dora,  # peft's DoRA: a trained magnitude per output row on top of the LoRA direction
    )


def network_ranks(targets: dict[str, str], net: NetworkConfig) -> tuple[dict[str, int], dict[str, float]]:
    """Rank and alpha per target module from the `network` section (3x3 convs get conv_rank)."""
    ranks, alphas = {}, {}
    for name, kind in targets.items():
        conv = kind == "conv3x3"
        ranks[name] = net.conv_rank if conv else net.lora_rank
        alphas[name] = net.conv_alpha_value if conv else net.alpha
    return ranks, alphas


def inject(
    model: nn.Module,
    ranks: dict[str, int],
    alphas: dict[str, float],
    dropout: float = 0.0,
    use_rslora: bool = False,
    use_dora: bool = False,
    kind: str = "lora",
) -> nn.Module:
    """Freeze `model` and add trainable layers (fp32) of network type `kind` (lora, dora, loha, lokr) on
    the modules named in `ranks`."""
    model.requires_grad_(False)
    if not ranks:
        return model
    if kind in KINDS:
        base = lora_config(ranks, alphas)  # the same exact-name targets and rank/alpha patterns
        config = lyco_config(
            kind, base.target_modules, base.r, base.lora_alpha, base.rank_pattern, base.alpha_pattern
        )
    else:
        config = lora_config(ranks, alphas, dropout, use_rslora, use_dora)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if kind == "dora":  # kohya/LyCORIS DoRA: a variant of peft's LoRA layers (inject/dora.py)
        add_column_dora(model, ADAPTER)
    for p in lora_parameters(model):
        p.data = p.data.float()
        p.requires_grad_(True)
    return model


def inject_network(module: nn.Module, targets: dict[str, str], net: NetworkConfig) -> nn.Module:
    """LoRA on `targets` (module name -> kind, from the family's lora_targets) with the network's ranks."""
    kind = "lora" if net.network_type == "locon" else net.network_type
    return inject(
        module, *network_ranks(targets, net), net.lora_dropout, net.use_rslora, net.use_dora, kind=kind
    )


def inject_unet(unet: nn.Module, net: NetworkConfig) -> nn.Module:
    """kohya's SD UNet preset on a bare diffusers UNet (tools and tests; training asks the family)."""
    return inject_network(unet, unet_targets(unet, with_conv=net.conv_rank is not None), net)


def inject_text_encoder(text_encoder: nn.Module, net: NetworkConfig) -> nn.Module:
    return inject_network(text_encoder, text_targets(text_encoder), net)


TRAINED = (".lora_A.", ".lora_B.", ".lora_magnitude_vector.", ".hada_", ".lokr_")


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if any(part in n for part in TRAINED)]


def _magnitude(layer: LoraLayer) -> torch.Tensor | None:
    """peft's own DoRA magnitude (per output row), not a column-DoRA dora_scale."""
    vectors = getattr(layer, "lora_magnitude_vector", None)
    if vectors is None or ADAPTER not in vectors or dora_scale_of(layer, ADAPTER) is not None:
        return None
    return vectors[ADAPTER].weight.detach()


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> its adapter layer (LoRA, LoHa or LoKr)."""
    return {
        n: m
        for n, m in model.named_modules()
        if (isinstance(m, LoraLayer) and ADAPTER in m.lora_A) or (is_lyco_layer(m) and ADAPTER in m.r)
    }


def read_weights(model: nn.Module) -> dict[str, LoraWeights | LycoWeights]:
    """Module name -> its weights (alpha = scaling * rank, as kohya stores it)."""
    out = {}
    for name, layer in lora_layers(model).items():
        if is_lyco_layer(layer):
            out[name] = read_lyco(layer, ADAPTER)
            continue
        rank = layer.r[ADAPTER]
        out[name] = LoraWeights(
            down=layer.lora_A[ADAPTER].weight.detach(),
            up=layer.lora_B[ADAPTER].weight.detach(),
            alpha=float(layer.scaling[ADAPTER] * rank),
            magnitude=_magnitude(layer),
            dora_scale=dora_scale_of(layer, ADAPTER),
        )
    return out


@torch.no_grad()
def write_weights(model: nn.Module, weights: dict[str, LoraWeights | LycoWeights]) -> None:
    """Copy weights into an injected model; every module must be present with the same shapes."""
    layers = lora_layers(model)
    for name, w in weights.items():
        layer = layers[name]
        if isinstance(w, LycoWeights):
            write_lyco(layer, ADAPTER, w)
            continue
        layer.lora_A[ADAPTER].weight.copy_(w.down)
        layer.lora_B[ADAPTER].weight.copy_(w.up)
        layer.scaling[ADAPTER] = w.alpha / layer.r[ADAPTER]
        magnitude = w.magnitude if w.magnitude is not None else w.dora_scale
        if magnitude is not None:
            layer.lora_magnitude_vector[ADAPTER].weight.copy_(magnitude)
