"""kohya sd-scripts keys (train_network.py's arguments, as its TOML configs write them) -> ours.

Each key is translated (it means the same as one of ours), accepted as a no-op with a logged reason (this
trainer already does what it asks), or refused with one sentence naming our equivalent (it cannot be honoured
here; its off value, kohya's default, asks for nothing and is accepted). Simple renames are root.ALIASES; the
kohya_ss GUI's own keys are kohya_gui.py's. load.py's build_config consults `rule_for` for every key and logs
the notes once the config is valid.
"""

from __future__ import annotations

from pathlib import Path

from .kohya_dataset import DOC as DATASET_DOC
from .kohya_gui import GUI_KEYS, GUI_OURS, family_field
from .kohya_network import DROPOUT, network_args_rule, network_module_rule
from .kohya_rules import Given, Outcome, Refused, Rule, gui_config, noop, off, on, refused, shown, to
from .sample import prompt_option, prompt_option_advice

ATTENTION = (
    "attention runs through PyTorch's scaled_dot_product_attention here (diffusers' default), which picks "
    "its flash or memory-efficient kernels itself"
)
LOADER = (
    "images are read in the training process here; kohya's loader workers change its speed, not the result"
)
TENSORBOARD = "TensorBoard logs are written to <output_dir>/logs here"
REMOVE = "Remove it"


def _unet_lr(value, given: Given) -> Outcome:
    if value is None or value == "":
        return {}, ""
    if not off(value):
        return {"learning_rate": value}, ""
    if gui_config(given) and off(given.get("text_encoder_lr")):  # the GUI: both 0 means learning_rate
        return {}, ""
    raise Refused(
        "is 0, which trains only the text encoder (kohya's network_train_text_encoder_only), but this "
        "trainer always trains the UNet's LoRA",
        "Set unet_lr above 0",
    )


def _learning_rate(value, given: Given) -> Outcome:
    """kohya's learning_rate is the default of both rates: with unet_lr set, it is the text encoder's."""
    if not on(given, "unet_lr"):
        return {"learning_rate": value}, ""
    if "text_encoder_lr" in given or _number(value) == _number(given["unet_lr"]):
        return {}, ""
    return {"text_encoder_lr": value}, "with unet_lr set it is the text encoder's rate (text_encoder_lr)"


def _text_encoder_lr(value, given: Given) -> Outcome:
    values = value if isinstance(value, (list, tuple)) else [value]
    if all(off(v) for v in values):
        if gui_config(given) and off(given.get("unet_lr")):  # the GUI: both 0 means learning_rate for both
            return {}, ""
        if given.get("train_text_encoder") is True:
            raise Refused(
                "0, which in kohya means the text encoder is not trained, but train_text_encoder is true",
                "Give the text encoder a rate, or set train_text_encoder: false",
            )
        return {}, "0 means the text encoder is not trained (train_text_encoder: false)"
    if len({_number(v) for v in values}) > 1:
        raise Refused(
            f"is {shown(value)}, one rate per text encoder, but SDXL's two share one text_encoder_lr here",
            "Write one number",
        )
    return {"text_encoder_lr": values[0]}, ""


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sample_prompts(value, given: Given) -> Outcome:
    """Ours is the prompts; kohya's is a prompt file (one prompt per line): a .txt path is read here."""
    if not isinstance(value, str):
        return {"sample_prompts": value}, ""
    text, note = value, ""
    path = Path(value.strip())
    if "\n" not in value and path.suffix.lower() in (".txt", ".toml", ".json"):
        if path.suffix.lower() != ".txt":
            raise Refused(
                "names a kohya prompt file in .toml/.json form", "Write the prompts in sample_prompts"
            )
        if not path.is_file():
            raise Refused("names a prompt file that does not exist", "Check the path, or write the prompts")
        text, note = path.read_text(encoding="utf-8-sig"), f"prompts read from {path}"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    for line in lines:
        option = prompt_option(line)
        if option:
            advice = prompt_option_advice(option)
            raise Refused(
                f"has kohya's per-prompt option {option} ({shown(line)}), which is not read here",
                advice[0].upper() + advice[1:],
            )
    return {"sample_prompts": lines}, note


def _lr_warmup_steps(value, given: Given) -> Outcome:
    number = _number(value)
    if number is not None and 0 < number < 1:
        raise Refused(
            f"is {shown(value)}, kohya's fraction of all steps, but ours counts steps",
            "Write the number of warm-up steps",
        )
    return {"lr_warmup_steps": value}, ""


def _max_train_steps(value, given: Given) -> Outcome:
    if off(value):
        return {}, ""
    if on(given, "max_train_epochs"):
        return {}, "kohya's max_train_epochs wins over max_train_steps"
    return {"max_train_steps": value}, ""


def _cache_latents(value, given: Given) -> Outcome:
    if on(given, "cache_latents_to_disk"):
        return {}, ""  # cache_latents_to_disk says disk
    return {"cache_latents": value}, ""


def _v_parameterization(value, _given: Given) -> Outcome:
    """kohya's `v_parameterization: true` is our v_prediction; false leaves `auto` (which detects SD2-v)."""
    if value is True:
        return {"prediction_type": "v_prediction"}, ""
    if value is False or value is None:
        return {}, ""
    raise ValueError("true or false")


def _choice(ours: str, value: str) -> Rule:
    """use_8bit_adam / use_lion_optimizer: true picks that optimiser."""
    return to(ours, lambda _v: value, doc=f"`{ours}: {value}` when true", skip_off=True)


_HUB = refused(
    "this trainer does not upload to the Hugging Face Hub", "Remove it; upload the LoRA file yourself"
)
_OTHER_FAMILY = noop("an option of kohya's SD3/FLUX trainers, which its SD 1.x/2.x and SDXL training ignores")
_KEPT_ALL = refused("every saved LoRA file is kept here (keep_last_n counts training states)", REMOVE)

KOHYA: dict[str, Rule] = {
    "network_module": network_module_rule(),
    "network_args": network_args_rule(),
    "network_train_unet_only": to("train_text_encoder", lambda v: False, "`train_text_encoder: false`", True),
    "network_train_text_encoder_only": refused(
        "this trainer always trains the UNet's LoRA (train_text_encoder: true adds the text encoder's)",
        REMOVE,
    ),
    "network_dropout": refused(DROPOUT, "Remove it, or write lora_dropout: ... for input dropout"),
    "network_weights": to("init_lora", skip_off=True),
    "dim_from_weights": noop("init_lora reads rank and alpha from the file"),
    "base_weights": refused("LoRAs are not merged into the base model before training here", REMOVE),
    "base_weights_multiplier": refused(
        "LoRAs are not merged into the base model before training here", REMOVE
    ),
    "no_metadata": refused("the metadata WebUI and ComfyUI read is always written here", REMOVE),
    "unet_lr": Rule("translated", "`learning_rate` (0, UNet not trained: refused)", _unet_lr),
    "max_train_epochs": to("epochs", skip_off=True),
    "v_parameterization": Rule(
        "translated", "`prediction_type: v_prediction` when true", _v_parameterization
    ),
    "v2": to("model_family", lambda v: "sd2", "`model_family: sd2` when true (else detected)", True),
    "cache_latents_to_disk": to("cache_latents", lambda v: "disk", "`cache_latents: disk` when true", True),
    "cache_info": noop("it only speeds up kohya's reading of the dataset"),
    "cache_text_encoder_outputs_to_disk": noop(
        "text-encoder outputs are cached in memory whenever that cannot change the result "
        "(cache_text_encoder_outputs)"
    ),
    "xformers": noop(ATTENTION),
    "sdpa": noop(ATTENTION),
    "mem_eff_attn": noop(ATTENTION),
    "use_8bit_adam": _choice("optimizer", "adamw8bit"),
    "use_lion_optimizer": _choice("optimizer", "lion"),
    "save_model_as": refused(
        "LoRA files are written as .safetensors here",
        "Remove it, or write safetensors",
        also_off=("safetensors",),
    ),
    "use_safetensors": noop("LoRA files are written as .safetensors here"),
    "save_last_n_steps": _KEPT_ALL,
    "save_last_n_epochs": _KEPT_ALL,
    "save_last_n_steps_state": refused(
        "keep_last_n sets how many training states are kept", "Use keep_last_n"
    ),
    "save_last_n_epochs_state": refused(
        "keep_last_n sets how many training states are kept", "Use keep_last_n"
    ),
    "save_n_epoch_ratio": refused("saves are every save_every_n_epochs here", "Use save_every_n_epochs"),
    "save_state_on_train_end": refused(
        "states are saved with save_steps here", "Use save_state with save_steps"
    ),
    **{
        name: refused("a run continues from its saved training state here", "Use resume: auto")
        for name in ("initial_epoch", "initial_step", "skip_until_initial_step")
    },
    "max_data_loader_n_workers": noop(LOADER),
    "persistent_data_loader_workers": noop(LOADER),
    "highvram": noop("the models go to the device one at a time, as each phase needs them"),
    "lowram": noop("the models go to the device one at a time, as each phase needs them"),
    "vae_batch_size": noop("it only sets how many images the latent cache encodes at once"),
    "text_encoder_batch_size": noop("it only sets how many captions the text-encoder cache encodes at once"),
    "skip_cache_check": noop("it only skips kohya's check of its own cache files"),
    "disable_mmap_load_safetensors": noop("it only changes how kohya reads the checkpoint file"),
    "tokenizer_cache_dir": noop("the tokenizer is read from the base model here"),
    "logging_dir": noop(TENSORBOARD),
    "log_prefix": noop(TENSORBOARD),
    "log_tracker_name": noop(TENSORBOARD),
    "log_config": noop("the resolved config is written into report.html"),
    "log_with": refused(
        "this trainer logs to TensorBoard only", "Remove it, or write tensorboard", also_off=("tensorboard",)
    ),
    "log_tracker_config": refused("this trainer logs to TensorBoard only", REMOVE),
    "wandb_api_key": noop("used only with log_with wandb, which this trainer does not log to"),
    "wandb_run_name": noop("used only with log_with wandb, which this trainer does not log to"),
    **{
        name: _HUB
        for name in (
            "huggingface_repo_id",
            "huggingface_token",
            "huggingface_repo_type",
            "huggingface_repo_visibility",
            "huggingface_path_in_repo",
            "resume_from_huggingface",
            "save_state_to_huggingface",
            "async_upload",
        )
    },
    "output_config": refused("`lora-scripts train --dry-run` prints the resolved config", REMOVE),
    "config_file": refused("a config cannot name another config file here", "Merge its keys into this file"),
    "dataset_config": Rule("translated", DATASET_DOC, lambda _value, _given: ({}, "")),  # load.py reads it
    "in_json": refused("kohya's fine-tuning metadata JSON is not read here", "Give metadata_path (a CSV)"),
    "dataset_class": refused("custom dataset classes are not loaded here", REMOVE),
    "conditioning_data_dir": refused("ControlNet training is not implemented here", REMOVE),
    "dataset_repeats": to("num_repeats"),
    "caption_prefix": refused(
        "captions are used as written here", "Add the text to the captions, or remove it"
    ),
    "caption_suffix": refused(
        "captions are used as written here", "Add the text to the captions, or remove it"
    ),
    "caption_separator": refused("tags are separated by commas here", REMOVE, also_off=(",",)),
    "secondary_separator": refused("captions are split at commas only here", REMOVE),
    "enable_wildcard": refused("{a|b} wildcards in captions are not expanded here", REMOVE),
    "caption_dropout_every_n_epochs": refused(
        "captions are dropped per step here", "Remove it; use caption_dropout_rate"
    ),
    "face_crop_aug_range": refused("face-crop augmentation is not implemented here", REMOVE),
    "token_warmup_min": refused("caption token warm-up is not implemented here", REMOVE, also_off=(1,)),
    "token_warmup_step": refused("caption token warm-up is not implemented here", REMOVE),
    "resize_interpolation": refused("images are resized with Lanczos here", REMOVE, also_off=("lanczos",)),
    "debug_dataset": refused("`lora-scripts doctor` checks a dataset", "Remove it; run lora-scripts doctor"),
    "vae": to("vae", skip_off=True),
    "masked_loss": refused("masked loss is not implemented here", REMOVE),
    "alpha_mask": refused("masked loss is not implemented here", REMOVE),
    "weighted_captions": refused("(word:1.2) weights in captions are not read here", REMOVE),
    "full_fp16": refused("LoRA weights always stay float32 here (mixed_precision sets the compute)", REMOVE),
    "full_bf16": refused("LoRA weights always stay float32 here (mixed_precision sets the compute)", REMOVE),
    "fp8_base": refused("the base model is not stored in fp8 here", REMOVE),
    "fp8_base_unet": refused("the base model is not stored in fp8 here", REMOVE),
    "cpu_offload_checkpointing": refused("checkpointed activations stay on the device here", REMOVE),
    "fused_backward_pass": refused("the fused backward pass is not implemented here", REMOVE),
    "huber_scale": refused("the huber loss is not scaled here (kohya's default 1)", REMOVE, also_off=(1,)),
    "lr_scheduler_args": refused(
        "our schedules read lr_scheduler_num_cycles and lr_scheduler_power", "Remove it; set those keys"
    ),
    "lr_scheduler_type": refused(
        "custom scheduler classes are not loaded here", "Remove it; use lr_scheduler"
    ),
    **{
        name: refused("kohya's schedules that read it are not implemented here", REMOVE)
        for name in ("lr_decay_steps", "lr_scheduler_timescale", "lr_scheduler_min_lr_ratio")
    },
    "validate_every_n_steps": to("validation_steps"),
    "validate_every_n_epochs": refused(
        "held-out images are scored every epoch here, or every validation_steps steps",
        "Use validation_steps",
        also_off=(1,),
    ),
    "max_validation_steps": refused("every held-out image is scored each time here", REMOVE),
    "validation_seed": noop("held-out scores use fixed noise and timesteps of their own"),
    **{
        name: refused("multi-GPU runs use accelerate's DDP settings here", REMOVE)
        for name in ("ddp_timeout", "ddp_gradient_as_bucket_view", "ddp_static_graph")
    },
    "dynamo_backend": refused("torch.compile is not used here", REMOVE, also_off=("no",)),
    "torch_compile": refused("torch.compile is not used here", REMOVE),
    "sample_at_first": refused("samples start at sample_every_n_steps here", REMOVE),
    **{name: _OTHER_FAMILY for name in ("weighting_scheme", "logit_mean", "logit_std", "mode_scale")},
    "blocks_to_swap": refused("block swapping is not implemented here", REMOVE),
}

# Our own keys, read the kohya way when a kohya key beside them changes what they mean (or kohya writes their
# value differently): the docs list these under their own table.
OURS_THE_KOHYA_WAY: dict[str, Rule] = {
    "learning_rate": Rule(
        "translated",
        "with kohya's unet_lr also set: the text encoder's rate (text_encoder_lr)",
        _learning_rate,
    ),
    "text_encoder_lr": Rule(
        "translated",
        "kohya's list (one per text encoder) is one rate here; 0 means the text encoder is not trained",
        _text_encoder_lr,
    ),
    "cache_latents": Rule(
        "translated", "true/false are memory/no; with cache_latents_to_disk true it is disk", _cache_latents
    ),
    "max_train_steps": Rule(
        "translated", "0 is unset; kohya's max_train_epochs wins over it, as in kohya", _max_train_steps
    ),
    "lr_warmup_steps": Rule(
        "translated",
        "kohya's fraction of all steps (below 1) is refused: ours counts steps",
        _lr_warmup_steps,
    ),
    "sample_prompts": Rule(
        "translated",
        "kohya's prompt file (.txt, one prompt per line) is read; one text of several lines is one prompt "
        "per line; kohya's per-prompt --n/--w/... options are refused",
        _sample_prompts,
    ),
    **GUI_OURS,
}


def kohya_names() -> list[str]:
    """Every kohya key name the table reads (not our own keys), for did-you-mean."""
    return [*KOHYA, *GUI_KEYS]


def rule_for(written: str) -> Rule | None:
    """How the key as written is read: None for our own keys and the simple renames (root.ALIASES)."""
    for table in (KOHYA, GUI_KEYS, OURS_THE_KOHYA_WAY):
        if written in table:
            return table[written]
    return family_field(written)
