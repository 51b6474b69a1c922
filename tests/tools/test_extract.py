"""`lora extract`: fine-tuned minus base, by SVD, recovers a known low-rank change module by module."""

import pytest
import torch

from lora_scripts.errors import ModelError
from lora_scripts.models.tiny import save_tiny_single_file
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.tools.extract import run_extract
from lora_scripts.tools.lora_io import read_lora
from lora_scripts.tools.lowrank import delta, rank_of

CHANGED = {  # module -> rank of the change made to it
    ("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"): 2,
    ("unet", "mid_block.attentions.0.proj_in"): 3,  # a 1x1 conv in SD1
    ("unet", "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj"): 1,
    ("unet", "up_blocks.2.resnets.1.conv2"): 2,  # 3x3 conv: only with --conv-rank
    ("te", "encoder.layers.3.mlp.fc2"): 2,
}


@pytest.fixture(scope="module")
def tuned(tiny_model, tmp_path_factory):
    """The tiny model with known low-rank changes, saved as a single file; returns (path, deltas)."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    gen = torch.Generator().manual_seed(7)
    deltas = {}
    with torch.no_grad():
        for (component, path), rank in CHANGED.items():
            model = pipe.unet if component == "unet" else pipe.text_encoder
            weight = model.get_submodule(path).weight
            low = torch.randn(weight.shape[0], rank, generator=gen) @ torch.randn(
                rank, weight[0].numel(), generator=gen
            )
            weight += 0.05 * low.reshape(weight.shape)
            deltas[kohya_name(component, path)] = 0.05 * low.reshape(weight.shape)
    return save_tiny_single_file(pipe, tmp_path_factory.mktemp("tuned") / "tuned.safetensors"), deltas


def test_extract_recovers_the_known_change(tiny_model, tuned, tmp_path, cli):
    path, deltas = tuned
    out = tmp_path / "extracted.safetensors"
    result = cli(
        "lora",
        "extract",
        str(path),
        str(tiny_model["single_file"]),
        "-o",
        str(out),
        "--rank",
        "4",
        "--conv-rank",
        "4",
        "--precision",
        "float",
    )
    assert result.returncode == 0, result.stderr
    assert "energy kept" in result.stdout and "100.00%" in result.stdout
    lora = read_lora(out)
    assert lora.modules.keys() == deltas.keys()  # unchanged modules are left out
    for name, w in lora.modules.items():
        known = deltas[name]
        assert rank_of(w) == next(r for (c, p), r in CHANGED.items() if kohya_name(c, p) == name)
        assert float((delta(w) - known).norm() / known.norm()) < 1e-4, name
    meta = lora.metadata
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "4"
    assert meta["ss_base_model_version"] == "sd_v1" and "conv_dim" in meta["ss_network_args"]
    assert meta["ss_sd_model_name"] == "tiny-sd15.safetensors"


def test_lower_rank_and_no_convs(tiny_model, tuned, tmp_path):
    path, deltas = tuned
    out = tmp_path / "r1.safetensors"
    kept = run_extract(str(path), str(tiny_model["single_file"]), out, rank=1)
    lora = read_lora(out)
    assert not any("resnets" in name for name in lora.modules)  # no --conv-rank: no 3x3 convs
    assert {rank_of(w) for w in lora.modules.values()} == {1} and lora.dtypes == {"float16"}
    to_k = kohya_name("unet", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k")
    assert 0.3 < kept[to_k].energy < 1  # rank-2 change cut to rank 1: part kept, and said so
    assert (
        kept[kohya_name("unet", "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj")].energy
        > 0.9999
    )


def test_identical_models_give_a_sentence(tiny_model, tmp_path):
    with pytest.raises(ModelError, match="same weights in every LoRA target"):
        run_extract(
            str(tiny_model["single_file"]), str(tiny_model["diffusers"]), tmp_path / "x.safetensors", 4
        )
    assert not (tmp_path / "x.safetensors").exists()
