"""Finding LoRAs by name, reading other trainers' files, and refusing files that do not fit the base."""

import pytest
import torch
from safetensors.torch import save_file

from lora_scripts.errors import ConfigError, FormatError
from lora_scripts.generate.library import LoraLibrary
from lora_scripts.models.tiny import build_tiny_sd
from lora_scripts.save.kohya import to_kohya
from lora_scripts.save.lora_read import load_lora

TO_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"


@pytest.fixture(scope="module")
def models():
    pipe = build_tiny_sd()
    return {"unet": pipe.unet, "te": pipe.text_encoder}


def test_found_by_file_name_or_ss_output_name(lora_dir):
    library = LoraLibrary(lora_dir)
    assert library.find("tech_phone").name == "tech_phone.safetensors"
    assert library.find("metal").name == "metal_v2-000010.safetensors"  # its ss_output_name, in a subfolder
    assert library.find("metal_v2-000010") == library.find("metal")


def test_unknown_name_lists_the_names_that_exist(lora_dir):
    with pytest.raises(ConfigError) as err:
        LoraLibrary(lora_dir).find("tech_phon")
    message = str(err.value)
    assert "No LoRA named 'tech_phon'" in message and "Did you mean 'tech_phone'" in message
    assert "metal, metal_v2-000010, tech_phone" in message


def test_kohya_locon_and_te_keys_map_to_module_paths(lora_dir, models, lora_parts):
    parts = load_lora(lora_dir / "tech_phone.safetensors", models, "sd1")
    assert parts["unet"].keys() == lora_parts[0]["unet"].keys()
    assert parts["te"].keys() == lora_parts[0]["te"].keys()
    conv = parts["unet"]["down_blocks.0.resnets.0.conv1"]
    assert conv.down.shape == (2, 32, 3, 3) and conv.up.shape == (32, 2, 1, 1) and conv.alpha == 1.0
    proj = parts["unet"]["down_blocks.0.attentions.0.proj_in"]  # a 1x1 conv in SD1
    assert proj.down.shape == (4, 32, 1, 1)


def _kohya(lora_parts, tmp_path, name, meta=None, edit=None):
    tensors = to_kohya(lora_parts[0], "float")
    if edit:
        tensors = edit(tensors)
    path = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=meta or {})
    return path


def _sd2_shaped(tensors):  # SD2's cross-attention reads 1024-wide text features
    return {**tensors, TO_K + ".lora_down.weight": torch.zeros(4, 1024)}


def _sdxl_keys(tensors):
    return {k.replace("lora_te_", "lora_te1_"): v for k, v in tensors.items()}


def _loha(tensors):
    return {**tensors, TO_K + ".hada_w1_a": torch.zeros(4, 4)}


@pytest.mark.parametrize(
    "meta, edit, words",
    [
        ({"ss_base_model_version": "sd_v2"}, _sd2_shaped, ["a LoRA for SD 2.x", "the base model is SD 1.x"]),
        ({}, _sd2_shaped, ["a LoRA for SD 2.x", "(4, 1024)"]),  # family read from the shapes
        ({}, _sdxl_keys, ["a LoRA for SDXL", "SD 1.x"]),
        ({}, _loha, ["LoHa"]),
    ],
)
def test_other_families_and_kinds_are_refused(lora_parts, tmp_path, models, meta, edit, words):
    path = _kohya(lora_parts, tmp_path, "other", meta, edit)
    with pytest.raises(FormatError) as err:
        load_lora(path, models, "sd1")
    message = str(err.value)
    assert all(w in message for w in words) and str(path) in message, message


def test_a_base_checkpoint_or_garbage_is_not_a_lora(tiny_model, tmp_path, models):
    with pytest.raises(FormatError, match="is not a LoRA file"):
        load_lora(tiny_model["single_file"], models, "sd1")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(FormatError, match="not a readable .safetensors"):
        load_lora(junk, models, "sd1")
