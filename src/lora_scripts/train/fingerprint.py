"""What a training state was made from, so `resume: auto` never continues another run's state.

A Ctrl-C'd 512 px run left a state; an incremental config with new images and `init_lora` then resumed it
without a word and overwrote the LoRA. Each state now records the data, base model and every setting that
changes the result; resume compares them and names what differs. `epochs` / `max_train_steps` are left out
on purpose: extending a run and resuming it is what people do.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..config.route import DIFFUSION_OPTIONS
from ..models.lr_blocks import side_weights

NETWORK_KEYS = (
    "network_type",
    "lora_rank",
    "lora_alpha",
    "conv_rank",
    "conv_alpha",
    "lora_dropout",
    "train_text_encoder",
)
TRAIN_KEYS = (
    "learning_rate",
    "text_encoder_lr",
    "optimizer",
    "weight_decay",
    "lr_scheduler",
    "lr_warmup_steps",
    "batch_size",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "noise_offset",
    "seed",
)
# per route (the data section that is set): (section, keys) that change the result; only the route's own,
# so the image route's fingerprints stay as they were
ROUTE_KEYS = {
    "data": [("data", ("resolution", "flip_aug", "shuffle_caption", "keep_tokens", "caption_dropout_rate"))],
    "llm": [("llm", ("train_on", "max_seq_len", "packing")), ("network", ("target_modules", "use_rslora"))],
}


# Training options added later (kohya's noise/loss/learning-rate options, augmentation): recorded only when
# set away from their default, so the states of runs that never used them keep their fingerprint
OPTION_KEYS = {
    "network": ("scale_weight_norms",),
    "train": (
        "optimizer_args",
        "lr_scheduler_num_cycles",
        "lr_scheduler_power",
        *DIFFUSION_OPTIONS,
        "loraplus_lr_ratio",
        "down_lr_weight",
        "mid_lr_weight",
        "up_lr_weight",
    ),
    "data": (
        "color_aug",
        "random_crop",
        "prior_loss_weight",
        "caption_tag_dropout_rate",
        "keep_tokens_separator",
        "bucket_no_upscale",
    ),
}


def run_fingerprint(cfg: Config, index) -> dict[str, str]:
    """Readable values (so a mismatch can be named), with the data and files summarised by hashes."""
    out = {
        "base_model": _file_id(Path(cfg.model.base_model)),
        "prediction_type": cfg.model.prediction_type,
        index.ID_NAME: index.data_id(),
        "init_lora": _file_id(Path(cfg.network.init_lora)) if cfg.network.init_lora else "none",
    }
    if cfg.model.vae:  # only then: states of runs without one keep their fingerprint
        out["vae"] = _file_id(Path(cfg.model.vae))
    sections = [(cfg.network, NETWORK_KEYS), (cfg.train, TRAIN_KEYS)]
    for route, parts in ROUTE_KEYS.items():
        sections += [(getattr(cfg, name), keys) for name, keys in parts if getattr(cfg, route) is not None]
    for section, keys in sections:
        out.update({key: str(getattr(section, key)) for key in keys})
    for name, keys in OPTION_KEYS.items():
        section = getattr(cfg, name)
        if section is not None:
            fields = type(section).model_fields
            default = {k: fields[k].get_default(call_default_factory=True) for k in keys}
            values = {k: getattr(section, k) for k in keys}
            out.update({k: _recorded(k, v) for k, v in values.items() if v != default[k]})
    return out


def _recorded(key: str, value) -> str:
    """A block-weight preset as the versions that spread it over SD's 12 blocks in the config recorded it
    (the config now keeps the word; the model spreads it), so the states of their runs still resume."""
    if key in ("down_lr_weight", "up_lr_weight") and isinstance(value, str):
        return str(side_weights(value, 12))
    return str(value)


def differences(saved: dict[str, str], now: dict[str, str]) -> list[str]:
    """'key: saved -> now' for every key that differs (a state from an older version has none saved)."""
    keys = list(now) + [k for k in saved if k not in now]
    return [
        f"{k}: {saved.get(k, 'not recorded')} -> {now.get(k, 'not set')}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def _file_id(path: Path) -> str:
    """Name and size: enough to tell models apart without hashing gigabytes (a PEFT adapter folder: the
    size of its weights)."""
    weights = path / "adapter_model.safetensors"
    try:
        if weights.is_file():
            return f"{path.name} ({weights.stat().st_size} bytes)"
        return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else path.name
    except OSError:
        return str(path)
