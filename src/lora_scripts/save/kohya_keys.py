"""The one kohya <-> module-name key table, both directions.

kohya/A1111/ComfyUI name a LoRA module `lora_unet_<diffusers path with _>` and
`lora_te_text_model_encoder_layers_N_...`. transformers >= 5.6 dropped the `text_model.` level from
CLIPTextModel, so text-encoder paths are normalised to the classic form before naming.
"""

from __future__ import annotations

from ..models.ldm_layout import unet_module_name

UNET = "lora_unet_"
TE = "lora_te_"
SUFFIX_DOWN, SUFFIX_UP, SUFFIX_ALPHA = ".lora_down.weight", ".lora_up.weight", ".alpha"
# LyCORIS's LoHa/LoKr tensors: `<name>.hada_w1_a`, `<name>.lokr_w2_b`... (no `.weight`)
LYCO_PARTS = (
    "hada_w1_a",
    "hada_w1_b",
    "hada_w2_a",
    "hada_w2_b",
    "hada_t1",
    "hada_t2",
    "lokr_w1",
    "lokr_w1_a",
    "lokr_w1_b",
    "lokr_w2",
    "lokr_w2_a",
    "lokr_w2_b",
    "lokr_t2",
)
DORA_SCALE = "dora_scale"  # LyCORIS's DoRA magnitude, `<name>.dora_scale` next to lora_down/lora_up/alpha


def te_canonical(path: str) -> str:
    """Text-encoder module path as older transformers (and every LoRA client) spell it."""
    return path if path.startswith("text_model.") else f"text_model.{path}"


TE_PREFIXES = {"te": TE, "te1": "lora_te1_", "te2": "lora_te2_"}  # SD's one encoder, SDXL's two


def kohya_name(component: str, path: str, unet_names: str = "diffusers") -> str:
    """`unet_names` is the family's (FamilyInfo.unet_names): "sgm" names SDXL's UNet modules."""
    if component == "unet":
        return sgm_unet_name(path) if unet_names == "sgm" else UNET + path.replace(".", "_")
    if component in TE_PREFIXES:
        return TE_PREFIXES[component] + te_canonical(path).replace(".", "_")
    raise ValueError(f"unknown component {component!r}")


# SDXL's UNet: 2 resnets per level (3 LDM blocks), attention in up levels 0 and 1 (not in the 320-wide one).
SDXL_PER_LEVEL, SDXL_UP_ATTENTION = 3, {0, 1}


def sgm_unet_name(path: str) -> str:
    """kohya's name of an SDXL UNet module: its SGM path (`lora_unet_input_blocks_4_1_transformer_blocks_0_
    attn1_to_q`), the form A1111, ComfyUI and diffusers all map (A1111 mis-maps some diffusers-named SDXL
    conv keys, e.g. up_blocks_0_upsamplers_0_conv)."""
    sgm = unet_module_name(path, SDXL_PER_LEVEL, SDXL_UP_ATTENTION)
    if sgm is None:
        raise ValueError(f"{path!r} has no SGM name in an SDXL UNet")
    return UNET + sgm.replace(".", "_")


def name_table(component: str, paths: list[str], unet_names: str = "diffusers") -> dict[str, str]:
    """kohya name -> module path, for the modules a model actually has (underscores make names ambiguous
    to split, so the inverse is a lookup, not a parse)."""
    return {kohya_name(component, p, unet_names): p for p in paths}


def split_key(key: str) -> tuple[str, str] | None:
    """`lora_unet_x.lora_down.weight` -> ("lora_unet_x", "down"), `lora_unet_x.hada_w1_a` -> (..,
    "hada_w1_a"), `.dora_scale` -> (.., "dora_scale"); None for keys that are not LoRA/LoHa/LoKr/DoRA
    tensors."""
    for suffix, part in ((SUFFIX_DOWN, "down"), (SUFFIX_UP, "up"), (SUFFIX_ALPHA, "alpha")):
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    name, _, part = key.rpartition(".")
    return (name, part) if (part in LYCO_PARTS or part == DORA_SCALE) and name else None


def group_modules(tensors: dict) -> tuple[dict[str, dict], list[str]]:
    """kohya module name -> {part: tensor} (down/up/alpha or LyCORIS's parts), and the keys that are none."""
    groups: dict[str, dict] = {}
    other = []
    for key, value in tensors.items():
        split = split_key(key)
        if split is None:
            other.append(key)
        else:
            groups.setdefault(split[0], {})[split[1]] = value
    return groups, other
