"""Starting points for the train form: config values for a kind of subject, one for small GPUs that is
applied on top of any of them, and configs/sdxl_8gb.yaml's recipe for SDXL on an 8 GB card. The user's own
keys (base_model, train_data_dir, output_name...) are not set here; `apply` merges a preset under what the
user typed.

No preset sets `resolution`: the base model's family gives it (512 for SD 1.x, 1024 for SDXL,
train/family_defaults.py), and a preset's 512 would shrink an SDXL training to a quarter of its native
area."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # a look: many varied images, tags shuffled so no single word carries the style; mirroring is harmless
    "style": {
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
        "lora_rank": 8,
    },
    # configs/sdxl_8gb.yaml without the user's keys and `resume` (the UI has its own Resume button);
    # tests/ui/test_presets.py holds the two equal. Its resolution (1024) is SDXL's own default.
    "sdxl_8gb": {
        "batch_size": 1,
        "gradient_accumulation_steps": 4,
        "max_train_steps": 1500,
        "learning_rate": 1e-4,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 50,
        "lora_rank": 16,
        "lora_alpha": 8,
        "train_text_encoder": False,  # UNet only: SDXL's two text encoders cost much memory
        "mixed_precision": "bf16",
        "gradient_checkpointing": True,
        "cache_latents": "disk",
        "cache_text_encoder_outputs": True,
        "optimizer": "adamw8bit",
        "save_steps": 250,
        "sample_every_n_steps": 250,
    },
}
# The i18n key of each preset's name (ui/i18n.py).
PRESET_LABELS = {name: f"preset.{name}" for name in PRESETS}


# A preset's preview schedule draws the user's preview prompts: without prompts it is left out (the config
# refuses a schedule with nothing to draw, on a field the designer never touched).
SAMPLE_SCHEDULE = ("sample_every_n_steps", "sample_every_n_epochs")


def apply(values: dict[str, Any], *presets: str) -> dict[str, Any]:
    """The form values with `presets` filled in (later presets win over earlier ones; the user's non-empty
    values win over all)."""
    merged: dict[str, Any] = {}
    for name in presets:
        merged.update(PRESETS[name])
    mine = {k: v for k, v in values.items() if v not in (None, "")}
    if not mine.get("sample_prompts"):
        merged = {k: v for k, v in merged.items() if k not in SAMPLE_SCHEDULE}
    return {**merged, **mine}
