"""PEFT adapter folders (adapter_config.json + adapter_model.safetensors), what peft, vLLM, TGI and
llama.cpp's convert_lora_to_gguf.py load. Written complete or not at all: built in a temp folder beside the
target, then renamed into place.

Keys are `base_model.model.<module>.lora_A.weight` / `.lora_B.weight` and nothing else (no embeddings, no
modules_to_save): vLLM's parse_fine_tuned_lora_name and llama.cpp's converter accept exactly these. A DoRA
adapter (`use_dora`) adds peft's `<module>.lora_magnitude_vector`, which peft and TGI load and vLLM refuses.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from peft import LoraConfig
from safetensors.torch import load_file, save_file

from ..config import Config
from ..errors import FormatError
from ..files import replacing_folder
from ..inject.lora import LoraWeights
from .kohya import DTYPES

PREFIX = "base_model.model."
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
MAGNITUDE = "lora_magnitude_vector"  # peft's saved name of a DoRA layer's magnitude (no `.weight`)


def adapter_config(weights: dict[str, LoraWeights], cfg: Config) -> LoraConfig:
    """The peft config that reproduces these layers: the common rank and alpha, patterns for the others;
    target_modules by their last names (peft matches them as suffixes, vLLM checks them against its own)."""
    rslora = cfg.network.use_rslora
    ranks = {n: int(w.down.shape[0]) for n, w in weights.items()}
    # LoraWeights.alpha is scaling * rank; peft's lora_alpha is that, or scaling * sqrt(rank) with rsLoRA
    alphas = {n: w.alpha / math.sqrt(ranks[n]) if rslora else w.alpha for n, w in weights.items()}
    rank = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    base = cfg.model.base_model
    local = Path(base).expanduser()
    return LoraConfig(
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(local.resolve()) if local.exists() else base,
        r=rank,
        lora_alpha=_plain(alpha),
        target_modules=sorted({n.rsplit(".", 1)[-1] for n in weights}),
        rank_pattern={n: r for n, r in ranks.items() if r != rank},
        alpha_pattern={n: _plain(a) for n, a in alphas.items() if a != alpha},
        lora_dropout=cfg.network.lora_dropout,
        use_rslora=rslora,
        use_dora=any(w.magnitude is not None for w in weights.values()),
        bias="none",
    )


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def save_peft_adapter(
    weights: dict[str, LoraWeights], folder: Path, cfg: Config, lineage: dict[str, str] | None = None
) -> Path:
    """`lineage` (the adapter a re-training continued from, the training comment) goes into the weights
    file's metadata, which peft and the servers ignore and `lora inspect` shows."""
    dtype = DTYPES[cfg.output.save_precision]
    tensors = {}
    for name, w in sorted(weights.items()):
        tensors[f"{PREFIX}{name}.lora_A.weight"] = w.down.to(dtype).contiguous()
        tensors[f"{PREFIX}{name}.lora_B.weight"] = w.up.to(dtype).contiguous()
        if w.magnitude is not None:
            tensors[f"{PREFIX}{name}.{MAGNITUDE}"] = w.magnitude.to(dtype).contiguous()
    with replacing_folder(folder) as tmp:
        adapter_config(weights, cfg).save_pretrained(str(tmp))
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt", **(lineage or {})})
    return folder


def read_peft_adapter(folder: Path) -> tuple[dict, dict]:
    """(adapter_config.json as a dict, tensors) of a PEFT adapter folder, or a sentence why not."""
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise FormatError(
            f"'{folder}' is not a PEFT adapter folder (it needs {CONFIG_FILE} and {WEIGHTS_FILE})",
            "Point at the folder the LLM training wrote, output_dir/<output_name>",
        )
    return json.loads(config_path.read_text(encoding="utf-8")), load_file(str(weights_path))


def adapter_weights(folder: Path) -> tuple[dict[str, LoraWeights], dict]:
    """(module name -> its LoRA weights, adapter_config.json) of a PEFT LoRA adapter folder; rank and
    alpha per module resolved from r / lora_alpha / rank_pattern / alpha_pattern / use_rslora as peft does."""
    from peft.utils.other import get_pattern_key

    conf, tensors = read_peft_adapter(folder)
    if conf.get("peft_type", "LORA") != "LORA":
        raise FormatError(
            f"'{folder}' is a {conf['peft_type']} adapter, not a LoRA",
            "Point at a LoRA adapter folder (peft_type LORA), e.g. one this tool trained",
        )
    alphas = conf.get("alpha_pattern") or {}  # each module's rank is its tensor's: rank_pattern is not needed
    weights = {}
    for key, down in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        name = key.removeprefix(PREFIX).removesuffix(".lora_A.weight")
        up = tensors.get(f"{PREFIX}{name}.lora_B.weight")
        if up is None:
            raise FormatError(f"'{folder}' has a lora_A but no lora_B weight for {name}", "Re-export it")
        rank = int(down.shape[0])
        alpha = float(alphas.get(get_pattern_key(list(alphas), name), conf.get("lora_alpha") or 8))
        scaling = alpha / math.sqrt(rank) if conf.get("use_rslora") else alpha / rank
        magnitude = tensors.get(f"{PREFIX}{name}.{MAGNITUDE}")
        weights[name] = LoraWeights(down.float(), up.float(), scaling * rank, magnitude)
    if not weights:
        raise FormatError(f"'{folder}' holds no lora_A/lora_B weights", "Point at a LoRA adapter folder")
    return weights, conf
