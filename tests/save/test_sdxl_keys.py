"""kohya's SDXL LoRA names (SGM form) for every module of a real-size SDXL UNet, checked against the clients:

- diffusers (`StableDiffusionXLLoraLoaderMixin.lora_state_dict`: `_maybe_map_sgm_blocks_to_diffusers` then
  `_convert_non_diffusers_lora_to_diffusers`) must map each name back to the module it was made from;
- ComfyUI (`comfy/lora.py model_lora_keys_unet`) and A1111 accept `lora_unet_` + an SGM module path of the
  model's `model.diffusion_model.*` weights with dots as underscores; the SGM weight names come from our
  layout writer and are proved by diffusers' own single-file converter, which reads them back into exactly
  the diffusers UNet's keys.

The UNet is built on the meta device (real sizes, no memory).
"""

from __future__ import annotations

import re

import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel
from diffusers.loaders.lora_conversion_utils import (
    _convert_non_diffusers_lora_to_diffusers,
    _maybe_map_sgm_blocks_to_diffusers,
)
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

from lora_scripts.models.ldm_layout import UNET_PREFIX, unet_to_ldm
from lora_scripts.models.targets import unet_targets
from lora_scripts.models.tiny_sdxl import SDXL_BASE_UNET
from lora_scripts.save.kohya_keys import sgm_unet_name


def _unet():
    with init_empty_weights():
        return UNet2DConditionModel(**SDXL_BASE_UNET)


def test_the_issue_examples():
    assert sgm_unet_name("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q") == (
        "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    )
    assert sgm_unet_name("mid_block.attentions.0.proj_in") == "lora_unet_middle_block_1_proj_in"
    assert sgm_unet_name("up_blocks.0.upsamplers.0.conv") == "lora_unet_output_blocks_2_2_conv"


def test_diffusers_maps_every_name_back_to_its_module():
    unet = _unet()
    targets = unet_targets(unet, with_conv=True)  # LoRA + LoCon: attention, ff, proj, resnet convs
    assert len(targets) > 700
    one = torch.zeros(1, 1)
    state = {}
    for path in targets:
        name = sgm_unet_name(path)
        state.update({f"{name}.lora_down.weight": one, f"{name}.lora_up.weight": one, f"{name}.alpha": one})
    mapped = _maybe_map_sgm_blocks_to_diffusers(state, unet.config)
    converted, _alphas = _convert_non_diffusers_lora_to_diffusers(mapped)
    downs = [
        k.removeprefix("unet.").removesuffix(".down.weight") for k in converted if k.endswith("down.weight")
    ]
    # diffusers' converter writes attention projections in its old processor form: a.processor.to_q_lora
    back = {re.sub(r"\.processor\.(to_\w+?)_lora$", r".\1", k).removesuffix(".lora") for k in downs}
    back = {k + ".0" if k.endswith(".to_out") else k for k in back}
    assert len(downs) == len(targets) and back == set(targets)


def test_every_name_is_an_sgm_module_of_the_checkpoint_layout():
    unet = _unet()
    diffusers_keys = {k: torch.empty(0) for k in unet.state_dict()}
    sgm = unet_to_ldm(diffusers_keys)
    # diffusers' own loader of SGM single files reads these names back into exactly the UNet's keys
    assert set(convert_ldm_unet_checkpoint(sgm, unet.config)) == set(diffusers_keys)
    comfy_names = {
        "lora_unet_" + k.removeprefix(UNET_PREFIX).removesuffix(".weight").replace(".", "_")
        for k in sgm
        if k.endswith(".weight")
    }
    names = {sgm_unet_name(p) for p in unet_targets(unet, with_conv=True)}
    assert names <= comfy_names
