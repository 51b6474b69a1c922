"""Starting points for the train form: config values for a kind of subject, and one for small GPUs that is
applied on top of any of them. The user's own keys (base_model, train_data_dir, output_name...) are not set
here; `apply` merges a preset under what the user typed."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # a look: many varied images, tags shuffled so no single word carries the style; mirroring is harmless
    "style": {
        "resolution": 512,
        "lora_rank": 16,
        "lora_alpha": 8,
        "learning_rate": 1e-4,
        "epochs": 10,
        "shuffle_caption": True,
        "keep_tokens": 1,
        "caption_dropout_rate": 0.05,
        "flip_aug": True,
        "lr_scheduler": "cosine",
    },
    # one object: logos and text are asymmetric (no mirroring), captions kept as written
    "product": {
        "resolution": 512,
        "lora_rank": 16,
        "lora_alpha": 16,
        "learning_rate": 1e-4,
        "epochs": 12,
        "flip_aug": False,
        "shuffle_caption": False,
        "enable_bucket": True,
    },
    # a person or mascot: more capacity for a face, the trigger word kept first when tags are shuffled
    "character": {
        "resolution": 512,
        "lora_rank": 32,
        "lora_alpha": 16,
        "learning_rate": 1e-4,
        "epochs": 15,
        "shuffle_caption": True,
        "keep_tokens": 1,
        "flip_aug": False,
        "lr_scheduler": "cosine",
    },
    # 8 GB of GPU memory: half precision, recomputed activations, latents and captions encoded once
    "small_gpu": {
        "batch_size": 1,
        "gradient_accumulation_steps": 2,
        "mixed_precision": "fp16",
        "gradient_checkpointing": True,
        "cache_latents": "disk",
        "cache_text_encoder_outputs": True,
        "resolution": 512,
        "lora_rank": 8,
    },
}
# The i18n key of each preset's name (ui/i18n.py).
PRESET_LABELS = {name: f"preset.{name}" for name in PRESETS}


def apply(values: dict[str, Any], *presets: str) -> dict[str, Any]:
    """The form values with `presets` filled in (later presets win over earlier ones; the user's non-empty
    values win over all)."""
    merged: dict[str, Any] = {}
    for name in presets:
        merged.update(PRESETS[name])
    merged.update({k: v for k, v in values.items() if v not in (None, "")})
    return merged
