"""`lora extract` on SDXL: the difference of two tiny SDXL models (UNet and both text encoders) as a kohya
SDXL LoRA (SGM UNet names, lora_te1_/lora_te2_) that diffusers' own SDXL loader applies to the base: at a
rank that holds the change it gives the tuned weights back to float tolerance, at a lower one it comes
closer than the base."""

from __future__ import annotations

import pytest
from diffusers import StableDiffusionXLPipeline
from safetensors import safe_open
from sdxl_tuned import tuned_sdxl

CHANGED = {  # component -> modules given a rank-3 change
    "unet": [
        "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
        "mid_block.attentions.0.proj_in",
        "up_blocks.0.attentions.1.transformer_blocks.1.ff.net.2",
    ],
    "text_encoder": ["encoder.layers.0.mlp.fc1"],
    "text_encoder_2": [
        f"text_model.encoder.layers.1.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "out_proj")
    ],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(base single file, tuned diffusers folder, base folder, the changed weights by component)."""
    root = tmp_path_factory.mktemp("xl")
    base, pipe = tuned_sdxl(root, CHANGED, rank=3, seed=3)
    tuned = {c: getattr(pipe, c).state_dict() for c in CHANGED}
    return base["single_file"], root / "tuned", base["diffusers"], tuned


def _applied(base_folder, lora):
    pipe = StableDiffusionXLPipeline.from_pretrained(base_folder, local_files_only=True)
    pipe.load_lora_weights(str(lora))
    pipe.fuse_lora(lora_scale=1.0, components=list(CHANGED))
    return {
        c: {
            k.replace(".base_layer", ""): v
            for k, v in getattr(pipe, c).state_dict().items()
            if "lora_" not in k
        }
        for c in CHANGED
    }


def _errors(weights, tuned, component):
    return {
        path: float((weights[component][path + ".weight"] - tuned[component][path + ".weight"]).norm())
        for path in CHANGED[component]
    }


def _extract(models, tmp_path, cli, rank: int):
    """`lora extract TUNED BASE --rank N` through the CLI, tuned folder minus base single file."""
    single, tuned_folder = models[:2]
    out = tmp_path / f"r{rank}.safetensors"
    args = [str(tuned_folder), str(single), "-o", str(out), "--rank", str(rank), "--precision", "float"]
    done = cli("lora", "extract", *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_full_rank_extract_gives_the_tuned_sdxl_back(models, tmp_path, cli):
    out = _extract(models, tmp_path, cli, rank=4)
    base_folder, tuned = models[2:]
    with safe_open(str(out), framework="pt") as f:
        names = {k.rsplit(".", 2)[0] for k in f.keys() if k.endswith("lora_down.weight")}
        meta = f.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k" in names  # SGM names
    assert "lora_unet_middle_block_1_proj_in" in names
    assert {n.split("_")[1] for n in names} == {"unet", "te1", "te2"} and len(names) == 8
    applied = _applied(base_folder, out)
    for component in CHANGED:
        for path, error in _errors(applied, tuned, component).items():
            assert error < 1e-4, (component, path, error)


def test_a_lower_rank_comes_closer_than_the_base(models, tmp_path, cli):
    out = _extract(models, tmp_path, cli, rank=1)
    base_folder, tuned = models[2:]
    applied = _applied(base_folder, out)
    base = StableDiffusionXLPipeline.from_pretrained(base_folder, local_files_only=True)
    before = {c: getattr(base, c).state_dict() for c in CHANGED}
    for component in CHANGED:
        near, far = _errors(applied, tuned, component), _errors(before, tuned, component)
        assert all(0 < near[p] < 0.9 * far[p] for p in near), (component, near, far)
