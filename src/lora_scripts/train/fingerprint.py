"""What a training state was made from, so `resume: auto` never continues another run's state.

A Ctrl-C'd 512 px run left a state; an incremental config with new images and `init_lora` then resumed it
without a word and overwrote the LoRA. Each state now records the data, base model and every setting that
changes the result; resume compares them and names what differs. `epochs` / `max_train_steps` are left out
on purpose: extending a run and resuming it is what people do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..config import Config
from ..data import DatasetIndex

NETWORK_KEYS = ("lora_rank", "lora_alpha", "conv_rank", "conv_alpha", "lora_dropout", "train_text_encoder")
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
DATA_KEYS = ("resolution", "flip_aug", "shuffle_caption", "keep_tokens", "caption_dropout_rate")


def run_fingerprint(cfg: Config, index: DatasetIndex) -> dict[str, str]:
    """Readable values (so a mismatch can be named), with the data and files summarised by hashes."""
    out = {
        "base_model": _file_id(Path(cfg.model.base_model)),
        "prediction_type": cfg.model.prediction_type,
        "training images": _data_id(index),
        "init_lora": _file_id(Path(cfg.network.init_lora)) if cfg.network.init_lora else "none",
    }
    for section, keys in ((cfg.network, NETWORK_KEYS), (cfg.train, TRAIN_KEYS), (cfg.data, DATA_KEYS)):
        out.update({key: str(getattr(section, key)) for key in keys})
    return out


def differences(saved: dict[str, str], now: dict[str, str]) -> list[str]:
    """'key: saved -> now' for every key that differs (a state from an older version has none saved)."""
    keys = list(now) + [k for k in saved if k not in now]
    return [
        f"{k}: {saved.get(k, 'not recorded')} -> {now.get(k, 'not set')}"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def _file_id(path: Path) -> str:
    """Name and size: enough to tell models apart without hashing gigabytes."""
    try:
        return f"{path.name} ({path.stat().st_size} bytes)" if path.is_file() else path.name
    except OSError:
        return str(path)


def _data_id(index: DatasetIndex) -> str:
    """Every image (name, size, first 64 KB), its caption and repeats: a new, edited or re-captioned image
    changes it; moving the folder does not."""
    digest = hashlib.sha1()
    for item in sorted(index.items, key=lambda i: str(i.path.relative_to(index.root))):
        digest.update(str(item.path.relative_to(index.root)).encode())
        digest.update(f"|{item.caption}|{item.repeats}|{item.path.stat().st_size}|".encode())
        with open(item.path, "rb") as handle:
            digest.update(handle.read(65536))
    return f"{index.num_images} images, {digest.hexdigest()[:12]}"
