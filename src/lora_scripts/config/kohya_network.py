"""kohya's network_module + network_args (and the kohya_ss GUI's LoRA_type) -> our network settings, plus
the defaults sd-scripts' train_network.py gives the keys a config leaves out (a config with network_module is
one of its configs, so what it leaves out means kohya's default, not ours).

Facts from the sources: networks/lora.py (conv_dim turns on the 3x3 convs, conv_alpha then defaults to 1),
LyCORIS' kohya.py (algo defaults to lora; conv_dim/conv_alpha default to network_dim/network_alpha) and its
config.py presets (full: kohya's LoCon set plus conv_in, conv_out and the time embedding; attn-mlp: attention
and feed-forward only, our default set).
"""

from __future__ import annotations

import shlex
from typing import Any

from .kohya_rules import Given, Outcome, Refused, Rule, gui_config, noop, off, on, refused, shown, to

NETWORK_MODULES = {"networks.lora": "lora", "lycoris.kohya": None}  # None: LyCORIS' algo says
ALGOS = {"lora": "lora", "locon": "locon", "loha": "loha", "lokr": "lokr", "dora": "dora"}  # -> network_type
# LyCORIS preset -> (3x3 convs adapted, text encoder trained: None = as the config says)
PRESETS = {"full": (True, None), "attn-mlp": (False, None), "unet-transformer-only": (False, False)}
FULL_NOTE = (
    "LyCORIS' preset full also adapts conv_in, conv_out and the time embedding; here the attention, "
    "feed-forward and ResNet/up/down-sample layers are adapted (kohya's LoCon set), with conv_rank {rank}"
)
KOHYA_RANK, KOHYA_ALPHA = 4, 1.0  # networks/lora.py and LyCORIS without network_dim; argparse's network_alpha
# kohya's defaults where ours differ: our key, kohya's value, the keys (kohya's or ours) that set it
KOHYA_DEFAULTS: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
    ("lora_rank", KOHYA_RANK, ("network_dim", "lora_rank")),
    ("lora_alpha", KOHYA_ALPHA, ("network_alpha", "lora_alpha")),
    ("learning_rate", 2e-6, ("learning_rate", "unet_lr")),
    ("max_train_steps", 1600, ("max_train_steps", "max_train_epochs", "epochs", "epoch")),
    ("enable_bucket", False, ("enable_bucket",)),
    ("caption_extension", ".caption", ("caption_extension", "caption_extention")),
    ("save_precision", "float", ("save_precision",)),
)
DROPOUT = (
    "kohya drops the LoRA's down-projection outputs, and our lora_dropout (peft's) drops the LoRA's input "
    "instead, a different regulariser"
)
_LYCORIS_ONLY = "this LyCORIS option is not implemented here"

# network_args entries read with network_module itself (network_from), for docs/config.md
READ_WITH_MODULE = {
    "conv_dim": "`conv_rank` (networks.lora: it also turns on the 3x3 convs, conv_alpha then defaulting to "
    "1, as kohya's; lycoris.kohya: it defaults to network_dim)",
    "conv_alpha": "`conv_alpha` (lycoris.kohya: it defaults to network_alpha)",
    "algo": "`network_type` (lycoris.kohya only: lora, locon, loha, lokr or dora; lora when not given)",
    "preset": "lycoris.kohya's layer set: full (its default: our LoCon layers, with a logged note that "
    "conv_in, conv_out and the time embedding are not adapted here), attn-mlp (attention and feed-forward "
    "only), unet-transformer-only (also no text encoder); any other is refused",
}
# the other network_args entries
NET_ARGS: dict[str, Rule] = {
    "dora_wd": to("dora_wd"),
    "down_lr_weight": to("down_lr_weight"),
    "mid_lr_weight": to("mid_lr_weight"),
    "up_lr_weight": to("up_lr_weight"),
    "loraplus_lr_ratio": to("loraplus_lr_ratio", skip_off=True),
    "loraplus_unet_lr_ratio": refused(
        "loraplus_lr_ratio applies to the UNet and the text encoder alike here", "Write loraplus_lr_ratio=..."
    ),
    "loraplus_text_encoder_lr_ratio": refused(
        "loraplus_lr_ratio applies to the UNet and the text encoder alike here", "Write loraplus_lr_ratio=..."
    ),
    "block_lr_zero_threshold": refused(
        "a block stops training here only at weight 0",
        "Remove it, and write 0 for those blocks in down_lr_weight / mid_lr_weight / up_lr_weight",
    ),
    **{
        name: refused("one rank and alpha hold for every block here", "Remove it; set lora_rank / conv_rank")
        for name in ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas")
    },
    "dropout": refused(DROPOUT, "Remove it, or write lora_dropout: ... for input dropout"),
    "rank_dropout": refused("rank dropout is not implemented here", "Remove it"),
    "module_dropout": refused("module dropout is not implemented here", "Remove it"),
    "wd_on_output": refused("our DoRA keeps a magnitude per input column (wd_on_output=False)", "Remove it"),
    "rs_lora": refused("rsLoRA (use_rslora) is an LLM-route option here", "Remove it"),
    "factor": refused("LoKr's factor is chosen automatically here", "Remove it", also_off=(-1,)),
    "disable_conv_cp": refused(_LYCORIS_ONLY, "Remove it", also_off=(True,)),
    **{
        name: refused(_LYCORIS_ONLY, "Remove it")
        for name in (
            "use_tucker",
            "use_cp",
            "use_conv_cp",
            "use_scalar",
            "train_norm",
            "bypass_mode",
            "rescaled",
            "constraint",
            "full_matrix",
            "unbalanced_factorization",
            "decompose_both",
            "rank_dropout_scale",
            "block_size",
        )
    },
    "verbose": noop("kohya prints the network's layers; the log here says what was injected"),
}


def parse_args(value: Any) -> dict[str, Any]:
    """kohya's `["conv_dim=4", "algo=loha"]` (or one string of them, or a `key: value` mapping) as a dict."""
    if off(value):
        return {}
    if isinstance(value, dict):
        return {str(k).strip(): v for k, v in value.items()}
    items = shlex.split(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("a list of key=value entries such as conv_dim=4")
    found: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"a list of key=value entries such as conv_dim=4 ({item!r} is not one)")
        if key.strip() in found:
            raise ValueError(f"a list that gives each key once ({key.strip()} is given twice)")
        found[key.strip()] = text.strip().strip("\"'")
    return found


def args_of(given: Given) -> dict[str, Any]:
    """The config's network_args as a dict; a malformed one is refused under its own name."""
    try:
        return parse_args(given.get("network_args"))
    except ValueError as exc:
        raise Refused(
            f"has value {shown(given.get('network_args'))}, but it must be {exc}",
            'Write it like network_args: ["conv_dim=4", "conv_alpha=1"]',
            key="network_args",
        ) from None


def network_from(module: Any, args: dict[str, Any], given: Given, args_key: str) -> Outcome:
    """Our network settings for kohya's network_module with its network_args (`args_key` names where the
    args came from, for messages)."""
    name = str(module).strip()
    if name not in NETWORK_MODULES:
        raise Refused(
            f"is {shown(module)}, a network this trainer does not train",
            "Use networks.lora or lycoris.kohya (algo lora, locon, loha, lokr), or our network_type",
        )
    args = dict(args)
    algo, preset = args.pop("algo", None), args.pop("preset", None)
    conv_dim, conv_alpha = args.pop("conv_dim", None), args.pop("conv_alpha", None)
    if name == "lycoris.kohya":
        out, note = _lycoris(algo, preset, conv_dim, conv_alpha, given, args_key)
    else:
        for key, value in (("algo", algo), ("preset", preset)):
            if value is not None:
                raise Refused(
                    f"has {key}={value}, which only LyCORIS reads: kohya's {name} ignores it and trains LoRA",
                    f"Set network_module: lycoris.kohya, or remove {key}",
                    key=args_key,
                )
        out, note = {"network_type": NETWORK_MODULES[name]}, ""
        if not off(conv_dim):  # kohya's LoCon (C3Lier): conv_alpha defaults to 1 there, not to conv_dim
            out["conv_rank"] = _whole(conv_dim)
            out["conv_alpha"] = 1.0 if conv_alpha is None else conv_alpha
    return {**out, **_entries(args, given, args_key)}, note


def _lycoris(algo, preset, conv_dim, conv_alpha, given: Given, args_key: str) -> Outcome:
    kind = ALGOS.get(str(algo or "lora").strip().lower())
    if kind is None:
        raise Refused(
            f"has algo={algo}, which this trainer does not train",
            "Use algo lora, locon, loha, lokr or dora (our network_type)",
            key=args_key,
        )
    layers = str(preset or "full").strip().lower()
    if layers not in PRESETS:
        raise Refused(
            f"has preset={preset}, a layer set this trainer does not adapt",
            "Use preset full, attn-mlp or unet-transformer-only, or remove it",
            key=args_key,
        )
    convs, text_encoder = PRESETS[layers]
    out: dict[str, Any] = {"network_type": kind}
    note = ""
    if convs:  # LyCORIS: conv_dim and conv_alpha default to network_dim and network_alpha
        out["conv_rank"] = _whole(conv_dim) if not off(conv_dim) else _given_rank(given)
        out["conv_alpha"] = conv_alpha if not off(conv_alpha) else _given_alpha(given)
        note = FULL_NOTE.format(rank=out["conv_rank"])
    elif not off(conv_dim):
        note = f"preset {layers} adapts no convolutions, so conv_dim is not used (as in LyCORIS)"
    if text_encoder is False:
        out["train_text_encoder"] = False
    return out, note


def _entries(args: dict[str, Any], given: Given, args_key: str) -> dict[str, Any]:
    unknown = [name for name in args if name not in NET_ARGS]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise Refused(
            f"has {'entries' if len(unknown) > 1 else 'an entry'} {names} that this trainer does not know",
            "Remove them; docs/config.md lists each kohya network_args entry and what it becomes here",
            key=args_key,
        )
    out: dict[str, Any] = {}
    for name, value in args.items():
        try:
            values, _ = NET_ARGS[name].apply(value, given)
        except Refused as no:
            raise Refused(
                f"has {name}={value}: {no.what.split(', but ', 1)[-1]}", no.hint, key=args_key
            ) from None
        out.update(values)
    return out


def _whole(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"a whole number (conv_dim {value!r} is not)") from None


def _given_rank(given: Given) -> Any:
    return given.get("network_dim") or given.get("lora_rank") or KOHYA_RANK


def _given_alpha(given: Given) -> Any:
    return given.get("network_alpha") or given.get("lora_alpha") or KOHYA_ALPHA


def kohya_defaults(given: Given) -> tuple[dict[str, Any], list[str]]:
    """sd-scripts' defaults for the keys a kohya config leaves out, where ours differ; kohya also trains the
    text encoder unless told not to (network_train_unet_only, text_encoder_lr 0)."""
    out = {key: value for key, value, keys in KOHYA_DEFAULTS if not any(k in given for k in keys)}
    if trains_text_encoder(given):
        out["train_text_encoder"] = True
    return out, [f"{key}: {value}" for key, value in out.items()]


def trains_text_encoder(given: Given) -> bool:
    """kohya trains the text encoder's LoRA unless network_train_unet_only, a text_encoder_lr of 0, or
    LyCORIS' unet-transformer-only preset says not to (and unless our own key says either way). The GUI
    (LoRA_type) trains both at learning_rate when both rates are 0."""
    if "train_text_encoder" in given or on(given, "network_train_unet_only"):
        return False
    if "text_encoder_lr" in given and _all_zero(given["text_encoder_lr"]):
        return gui_config(given) and off(given.get("unet_lr"))  # the GUI: both 0 means learning_rate
    preset = given.get("LyCORIS_preset") if gui_config(given) else args_of(given).get("preset")
    return str(preset).strip().lower() != "unet-transformer-only"


def _all_zero(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(off(v) for v in values)


def network_module_rule() -> Rule:
    def apply(value, given):
        out, note = network_from(value, args_of(given), given, "network_args")
        defaults, named = kohya_defaults(given)
        told = [note] if note else []
        if named:
            told.append("kohya's defaults for keys the config leaves out: " + ", ".join(named))
        return {**defaults, **out}, "; ".join(told)

    return Rule(
        "translated",
        "`network_type` (networks.lora: lora, and LoCon with conv_dim; lycoris.kohya: network_args' algo), "
        "with network_args; the keys a kohya config leaves out get kohya's defaults where ours differ ("
        + ", ".join(f"{k} {v}" for k, v, _ in KOHYA_DEFAULTS)
        + ", and the text encoder trained unless network_train_unet_only)",
        apply,
    )


def network_args_rule() -> Rule:
    def apply(value, given):
        if "network_module" in given:  # read together with network_module (its rule)
            args_of(given)  # its form is still checked here, under its own name
            return {}, ""
        out, note = network_from("networks.lora", args_of(given), given, "network_args")
        out.pop("network_type")  # without network_module our network_type (or its default) holds
        return out, note

    return Rule("translated", "read with network_module: see the network_args table below", apply)
