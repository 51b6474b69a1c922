"""`lora extract` on SDXL keeps each OpenCLIP-G (lora_te2_) attention's q/k/v/out_proj together: A1111 folds
q/k/v into the encoder's packed in_proj and applies them only when all four are in the file. A fine-tune that
changed only some of them still gives all four (the unchanged ones with their zero delta), and diffusers'
SDXL loader applied to the base gives the tuned encoders back. CLIP-L's (lora_te1_) sets are kept whole too:
diffusers cannot read an encoder whose attention LoRA has no out_proj."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from safetensors.torch import load_file
from sdxl_tuned import tuned_sdxl

from lora_scripts.models.tiny_sdxl import build_tiny_sdxl, save_tiny_sdxl
from lora_scripts.tools.extract import run_extract

TE2 = "text_model.encoder.layers.{}.self_attn.{}"
CHANGED = {  # component -> modules given a rank-2 change: partial attention sets only
    "text_encoder_2": [TE2.format(1, "q_proj"), TE2.format(1, "v_proj"), TE2.format(0, "out_proj")],
    "text_encoder": ["encoder.layers.0.self_attn.q_proj"],
    "unet": ["mid_block.attentions.0.proj_in"],
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """(the extracted file, base folder, the tuned encoders' weights)."""
    root = tmp_path_factory.mktemp("xl_sets")
    base, pipe = tuned_sdxl(root, CHANGED, rank=2, seed=5)
    out = root / "extracted.safetensors"
    run_extract(str(root / "tuned"), str(base["single_file"]), out, rank=4, precision="float")
    return (
        out,
        base["diffusers"],
        {c: getattr(pipe, c).state_dict() for c in ("text_encoder", "text_encoder_2")},
    )


def _modules(tensors, prefix):
    return {k.split(".")[0] for k in tensors if k.startswith(prefix) and k.endswith("lora_down.weight")}


def test_a_partly_changed_te2_attention_is_extracted_as_a_whole_set(extracted):
    tensors = load_file(str(extracted[0]))
    te2 = _modules(tensors, "lora_te2_")
    sets = {f"lora_te2_text_model_encoder_layers_{i}_self_attn_{p}_proj" for i in (0, 1) for p in "qkv"}
    sets |= {f"lora_te2_text_model_encoder_layers_{i}_self_attn_out_proj" for i in (0, 1)}
    assert te2 == sets  # layer 2 did not change: no LoRA there
    te1 = {f"lora_te1_text_model_encoder_layers_0_self_attn_{p}_proj" for p in ("q", "k", "v", "out")}
    assert _modules(tensors, "lora_te1_") == te1
    assert not any("_mlp_" in name for name in te2 | te1)  # only attention sets: unchanged MLPs stay out
    ranks = {tensors[f"{name}.lora_down.weight"].shape[0] for name in te2 | te1}
    assert ranks == {2}  # an unchanged member at its set's rank: diffusers scales odd ranks wrongly
    for name in ("layers_1_self_attn_k_proj", "layers_1_self_attn_out_proj", "layers_0_self_attn_q_proj"):
        up = tensors[f"lora_te2_text_model_encoder_{name}.lora_up.weight"]
        down = tensors[f"lora_te2_text_model_encoder_{name}.lora_down.weight"]
        assert float((up @ down).abs().max()) <= 1e-6, name  # unchanged member: carried with no effect


def test_diffusers_applies_the_set_and_gives_the_tuned_encoder_back(extracted):
    path, base_folder, tuned = extracted
    pipe = StableDiffusionXLPipeline.from_pretrained(base_folder, local_files_only=True)
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora(lora_scale=1.0, components=["text_encoder", "text_encoder_2"])
    for component, weights in tuned.items():
        fused = {re.sub(r"\.base_layer", "", k): v for k, v in getattr(pipe, component).state_dict().items()}
        for key, tuned_weight in weights.items():
            assert (fused[key] - tuned_weight).abs().max() < 1e-5, (component, key)


def test_a_member_with_a_change_below_min_diff_takes_the_sets_rank(tmp_path):
    """A member changed by less than --min-diff, but in every direction (full rank), joins its set at the
    set's rank, not the command's --rank: a set of mixed ranks is what diffusers scales wrongly."""
    base = save_tiny_sdxl(tmp_path)
    pipe = build_tiny_sdxl()
    gen = torch.Generator().manual_seed(9)
    with torch.no_grad():
        q = pipe.text_encoder_2.get_submodule(TE2.format(0, "q_proj")).weight
        q += 0.02 * (torch.randn(q.shape[0], 2, generator=gen) @ torch.randn(2, q.shape[1], generator=gen))
        k = pipe.text_encoder_2.get_submodule(TE2.format(0, "k_proj")).weight
        k += 1e-4 * torch.randn(k.shape, generator=gen)  # full rank, below --min-diff 1e-3
    pipe.save_pretrained(tmp_path / "tuned", safe_serialization=True)
    out = tmp_path / "x.safetensors"
    tuned = str(tmp_path / "tuned")
    run_extract(tuned, str(base["single_file"]), out, rank=8, precision="float", min_diff=1e-3)
    tensors = load_file(str(out))
    name = "lora_te2_text_model_encoder_layers_0_self_attn_{}_proj.lora_down.weight"
    ranks = {p: tensors[name.format(p)].shape[0] for p in ("q", "k", "v", "out")}
    assert ranks == {"q": 2, "k": 2, "v": 2, "out": 2}
