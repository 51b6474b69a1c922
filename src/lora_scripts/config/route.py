"""Which route a config takes, image (SD) or LLM, and the keys that belong to only one of them.

Decided from `model_type`, else from what `base_model` is (a diffusers folder or a checkpoint file: image;
a folder whose config.json names a causal language model: LLM), else (a hub id) from the data key given.
Reads one small JSON file at most: no torch here.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE, LLM = "image", "llm"
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")
# kohya's noise, loss and text-encoder options of the diffusion loss (the train section; image route only)
DIFFUSION_OPTIONS = (
    "noise_offset_random_strength",
    "adaptive_noise_scale",
    "multires_noise_iterations",
    "multires_noise_discount",
    "ip_noise_gamma",
    "ip_noise_gamma_random_strength",
    "min_snr_gamma",
    "debiased_estimation_loss",
    "scale_v_pred_loss_like_noise_pred",
    "v_pred_like_loss",
    "loss_type",
    "huber_c",
    "huber_schedule",
    "zero_terminal_snr",
    "min_timestep",
    "max_timestep",
    "clip_skip",
    "max_token_length",
)
# Keys of the shared sections that only one route reads (the `data` and `sample` sections are whole).
IMAGE_ONLY = {
    "network_type",  # LoHa/LoKr files are kohya's; the LLM route writes PEFT LoRA adapters (use_dora: DoRA)
    "dora_wd",  # LyCORIS's DoRA switch for images; the LLM route says use_dora
    "model_family",
    "allow_pickle",
    "prediction_type",
    "no_half_vae",
    "vae",
    "conv_rank",
    "conv_alpha",
    "train_text_encoder",
    "text_encoder_lr",
    "cache_latents",
    "cache_text_encoder_outputs",
    "noise_offset",
    *DIFFUSION_OPTIONS,
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    # samples on the LLM route are greedy replies to sample_prompts: the image settings do not apply
    "sample_negative_prompt",
    "sample_steps",
    "sample_sampler",
    "sample_cfg_scale",
    "sample_seed",
    "sample_size",
}
LLM_ONLY = {"target_modules", "use_rslora", "use_dora", "load_in_4bit"}
IMAGE_SECTIONS = ("data",)
LLM_SECTIONS = ("llm",)


def causal_lm_architecture(path: Path) -> str | None:
    """The architecture named in a transformers folder's config.json ("LlamaForCausalLM") when it is a
    causal language model, else None."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    names = config.get("architectures") or [] if isinstance(config, dict) else []
    return next((n for n in names if isinstance(n, str) and n.endswith(CAUSAL_LM_SUFFIXES)), None)


def route_of(base_model: str, model_type: str, llm_keys_given: bool) -> tuple[str, str]:
    """(route, why) for a config; `why` completes "this config trains ..." sentences."""
    if model_type in (IMAGE, LLM):
        return model_type, f"model_type is {model_type}"
    path = Path(str(base_model)).expanduser()
    if not str(base_model).strip():
        pass  # missing: load.py's _require says so
    elif path.is_dir():
        if (path / "unet" / "config.json").is_file():
            return IMAGE, f"base_model '{base_model}' is a diffusers folder"
        arch = causal_lm_architecture(path)
        if arch:
            return LLM, f"base_model '{base_model}' is a transformers causal language model ({arch})"
    elif path.is_file():
        return IMAGE, f"base_model '{base_model}' is a checkpoint file"
    if llm_keys_given:
        return LLM, "the config sets LLM keys such as dataset"
    return IMAGE, "nothing in it names a language model"
