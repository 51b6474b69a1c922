"""The kohya_ss GUI's own keys (its saved JSON; the TOML it writes for sd-scripts keeps a few) -> ours.

The GUI turns LoRA_type and its top-level LoCon/LyCORIS fields into network_module + network_args, as its
lora_gui.py does; a 0 or an empty string means "not set" there (load.py drops a .json file's empty strings).
"""

from __future__ import annotations

from typing import Any

from .kohya_network import NET_ARGS, network_from, trains_text_encoder
from .kohya_rules import (
    Given,
    Outcome,
    Refused,
    Rule,
    gui_config,
    noop,
    off,
    on,
    quiet,
    refused,
    shown,
    to,
    when,
)

REMOVE = "Remove it"
# the GUI's LoRA_type -> (network_module, LyCORIS algo, the GUI keys it passes on as network_args)
_KOHYA_ARGS = (
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
)
_DROPOUTS = ("rank_dropout", "module_dropout")
_LYCORIS_ARGS = ("conv_dim", "conv_alpha", "use_tucker", "bypass_mode", "use_scalar", "rank_dropout_scale")
_LYCORIS_ARGS += ("train_norm", *_DROPOUTS)
GUI_TYPES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "Standard": ("networks.lora", None, (*_KOHYA_ARGS, *_DROPOUTS)),
    "Kohya LoCon": ("networks.lora", None, ("conv_dim", "conv_alpha", *_KOHYA_ARGS, *_DROPOUTS)),
    "LoCon": ("lycoris.kohya", "locon", _LYCORIS_ARGS),
    "LyCORIS/LoCon": ("lycoris.kohya", "locon", _LYCORIS_ARGS),
    "LyCORIS/LoHa": ("lycoris.kohya", "loha", _LYCORIS_ARGS),
    "LyCORIS/LoKr": ("lycoris.kohya", "lokr", (*_LYCORIS_ARGS, "factor", "use_cp", "decompose_both")),
}
_PASSED_ON = {name for *_, names in GUI_TYPES.values() for name in names}


def _lora_type(value, given: Given) -> Outcome:
    if value not in GUI_TYPES:
        raise Refused(
            f"is {shown(value)}, a network this trainer does not train",
            f"Use one of {', '.join(GUI_TYPES)}, or our network_type",
        )
    module, algo, names = GUI_TYPES[value]
    args: dict[str, Any] = {n: given[n] for n in names if n in given and not off(given[n])}
    if module == "lycoris.kohya":  # the GUI passes every LyCORIS field, set or not, and the preset
        args.update({n: given[n] for n in names if n in given}, algo=algo)
        args["preset"] = given.get("LyCORIS_preset") or "full"
    out, note = network_from(module, args, given, "LoRA_type")
    if trains_text_encoder(given):
        out["train_text_encoder"] = True
        note = "; ".join(filter(None, [note, "the text encoder is trained too, as the GUI does"]))
    return out, note


def _epoch(value, given: Given) -> Outcome:
    if on(given, "max_train_epochs"):
        return {}, "max_train_epochs is the number of epochs"
    return {"epochs": value}, ""


def _lr_warmup(value, given: Given) -> Outcome:
    """The GUI's warm-up is a percentage of all steps, which only a given max_train_steps makes steps here."""
    if off(value):
        return {}, ""
    if on(given, "lr_warmup_steps"):
        return {}, "lr_warmup_steps is given and wins, as in the GUI"
    if on(given, "max_train_steps"):
        steps = round(float(value) * int(float(given["max_train_steps"])) / 100)
        return {"lr_warmup_steps": steps}, f"{value}% of max_train_steps is {steps} warm-up steps"
    raise Refused(
        f"is {shown(value)}, the GUI's percentage of all steps, which is not known before the data is read",
        "Write lr_warmup_steps: N (steps) instead",
    )


def _passed_on(name: str) -> Rule:
    """A LoCon/LyCORIS field of the GUI: read with LoRA_type; without it, as the network_args entry."""
    alone = to("conv_rank") if name == "conv_dim" else NET_ARGS[name]
    doc = f"read with LoRA_type, as network_args' {name}" + (
        " (without LoRA_type: `conv_rank`)" if name == "conv_dim" else f": {alone.doc}"
    )
    return when(lambda _v, given: gui_config(given), quiet(doc), alone, doc, alone.kind)


def _noise(key: str, kind: str) -> Rule:
    """The GUI keeps both kinds of noise settings and passes on those of its noise_offset_type only."""

    def dropped(value, _given):
        return {}, "" if off(value) else f"the GUI passes it on only with noise_offset_type {kind}"

    return when(
        lambda _v, given: given.get("noise_offset_type", kind) != kind,
        Rule("no-op", "", dropped),
        to(key),
        f"passed on only with the GUI's noise_offset_type {kind} (when that key is given)",
    )


def _ours_unless(condition, why: str, key: str) -> Rule:
    return when(lambda _v, given: condition(given), quiet(why), to(key), why)


_OTHER = "it selects another model family, and this trainer trains SD 1.x, 2.x and SDXL"
# the GUI's switches for other model families; its fields for them (kept in every saved JSON, used only with
# their switch on) are those with the switch's prefix, and the FLUX/SD3 ones named below
FAMILY_SWITCHES = (
    "flux1_checkbox",
    "sd3_checkbox",
    "hunyuan_image_checkbox",
    "anima_checkbox",
    "lumina_checkbox",
)
_FAMILY_PREFIXES = ("flux1_", "sd3_", "hunyuan_", "anima_", "lumina_")
OTHER_FAMILY_KEYS = (
    *("clip_l", "clip_g", "t5xxl", "ae", "guidance_scale", "t5xxl_max_token_length", "apply_t5_attn_mask"),
    *("discrete_flow_shift", "model_prediction_type", "timestep_sampling", "split_mode", "train_blocks"),
    *("mem_eff_save", "train_t5xxl", "t5xxl_lr", "single_blocks_to_swap", "double_blocks_to_swap"),
    *("img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim"),
    *("txt_mod_dim", "single_mod_dim", "in_dims", "train_double_block_indices", "train_single_block_indices"),
    *("enable_all_linear", "split_qkv", "clip_g_dropout_rate", "pos_emb_random_crop_rate", "save_clip"),
    *("save_t5xxl", "t5xxl_device", "t5xxl_dtype", "show_timesteps", "show_timesteps_resolution"),
    "sigmoid_scale",
)


def _other_family() -> Rule:
    """In the GUI's JSON: used only with another family's switch on (refused itself); elsewhere (the TOML the
    GUI writes for sd-scripts) such a key means that family's training, and is refused."""
    return when(
        lambda _v, given: gui_config(given),
        quiet("used only with another model family's switch (flux1_checkbox, ...), which is refused when on"),
        refused(
            "it belongs to kohya's FLUX/SD3/other-family trainers; this trainer trains SD 1.x, 2.x and SDXL",
            REMOVE,
        ),
        "used by the GUI only with another model family's switch on; in an sd-scripts config, refused",
    )


def family_field(key: str) -> Rule | None:
    """The rule of a GUI field of another model family, by its prefix (sd3_clip_l, anima_vae, ...)."""
    if key.startswith(_FAMILY_PREFIXES) and key not in FAMILY_SWITCHES:
        return _other_family()
    return None


_TEXT_CACHE = (
    "text-encoder outputs are cached whenever that cannot change the result (cache_text_encoder_outputs)"
)

GUI_KEYS: dict[str, Rule] = {
    "LoRA_type": Rule(
        "translated",
        "`network_type` and the conv/LyCORIS fields, as the GUI's network_module + network_args "
        f"({', '.join(GUI_TYPES)}); the text encoder trains unless text_encoder_lr is 0",
        _lora_type,
    ),
    "LyCORIS_preset": quiet("read with LoRA_type (LyCORIS' preset)"),
    **{name: _passed_on(name) for name in sorted(_PASSED_ON - {"conv_alpha"})},
    "constrain": refused("this LyCORIS option is not implemented here", REMOVE),
    "conv_dims": refused("one conv rank holds for every block here", "Remove it; set conv_rank"),
    "conv_alphas": refused("one conv alpha holds for every block here", "Remove it; set conv_alpha"),
    "unit": refused("DyLoRA is not trained here", REMOVE, also_off=(1,)),
    "train_on_input": quiet("an option of IA3 (LoRA_type iA3), which is not trained here"),
    "epoch": Rule("translated", "`epochs` (max_train_epochs wins when set)", _epoch),
    "max_resolution": to("resolution"),
    "lr_warmup": Rule(
        "translated",
        "the GUI's percentage: `lr_warmup_steps` of max_train_steps when that is given",
        _lr_warmup,
    ),
    "lora_network_weights": to("init_lora", skip_off=True),
    "model_list": quiet("the GUI's model picker; base_model is pretrained_model_name_or_path"),
    "sdxl": quiet("the model family is read from the checkpoint here"),
    "sdxl_no_half_vae": noop("the SDXL VAE computes in float32 here"),
    "sdxl_cache_text_encoder_outputs": noop(_TEXT_CACHE),
    "noise_offset_type": quiet("chooses which of the GUI's noise settings it passes on"),
    "additional_parameters": refused(
        "extra command-line options are not passed on here", "Write each as a key of this config"
    ),
    "num_cpu_threads_per_process": to("num_threads"),
    "num_processes": refused("`lora-scripts train --processes N` starts N processes", REMOVE, also_off=(1,)),
    "num_machines": refused("a multi-machine run is started with accelerate here", REMOVE, also_off=(1,)),
    "multi_gpu": refused("`lora-scripts train --processes N` trains on N GPUs", REMOVE),
    "gpu_ids": refused(
        "the GPUs are chosen with CUDA_VISIBLE_DEVICES here", "Remove it; set CUDA_VISIBLE_DEVICES"
    ),
    "main_process_port": refused("the processes are started by `lora-scripts train --processes`", REMOVE),
    "extra_accelerate_launch_args": refused("accelerate is started by `lora-scripts train` here", REMOVE),
    **{name: quiet("used only with dynamo_backend") for name in ("dynamo_mode", "dynamo_use_fullgraph")},
    "dynamo_use_dynamic": quiet("used only with dynamo_backend"),
    "stop_text_encoder_training": refused("the text encoder trains for the whole run here", REMOVE),
    "stop_text_encoder_training_pct": refused("the text encoder trains for the whole run here", REMOVE),
    "use_wandb": refused("this trainer logs to TensorBoard only", REMOVE),
    "lowvram": noop("the models go to the device one at a time, as each phase needs them"),
    "save_as_bool": quiet("the GUI's own save setting"),
    "training_preset": quiet("the GUI's preset picker"),
    **{
        f"metadata_{name}": refused("modelspec metadata is not set from the config here", REMOVE)
        for name in ("author", "description", "license", "tags", "title")
    },
    "no_token_padding": refused(
        "captions are padded to the full token length here, as kohya's default", REMOVE
    ),
    "train_inpainting": refused("inpainting models are not trained here", REMOVE),
    "train_lora_ggpo": refused("GGPO is not implemented here", REMOVE),
    "ggpo_sigma": quiet("used only with train_lora_ggpo"),
    "ggpo_beta": quiet("used only with train_lora_ggpo"),
    **{
        name: NET_ARGS[name]
        for name in ("rescaled", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio")
    },
    **{name: refused(_OTHER, "Uncheck it in the GUI, or remove it") for name in FAMILY_SWITCHES},
    **{name: _other_family() for name in OTHER_FAMILY_KEYS},
}

# our keys whose GUI value means something else beside another GUI key
GUI_OURS: dict[str, Rule] = {
    "conv_alpha": _ours_unless(gui_config, "read with LoRA_type in a GUI config", "conv_alpha"),
    "noise_offset": _noise("noise_offset", "Original"),
    "adaptive_noise_scale": _noise("adaptive_noise_scale", "Original"),
    "multires_noise_iterations": _noise("multires_noise_iterations", "Multires"),
    "multires_noise_discount": _noise("multires_noise_discount", "Multires"),
}
