"""The saved file is what A1111/ComfyUI/diffusers read: names, shapes, scale, metadata, and a real reload."""

import hashlib
import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open

from lora_scripts.config import NetworkConfig, build_config
from lora_scripts.inject.lora import inject_text_encoder, inject_unet, read_weights
from lora_scripts.save.kohya import from_kohya, read_lora_file, to_kohya
from lora_scripts.save.metadata import RunFacts
from lora_scripts.save.writer import save_lora


def _randomise(*modules, scale=0.2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if ".lora_A." in name or ".lora_B." in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)


@pytest.fixture()
def pipe(tiny_model):
    p = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    p.set_progress_bar_config(disable=True)
    return p


def _parts(pipe, te=True):
    out = {"unet": read_weights(pipe.unet)}
    if te:
        out["te"] = read_weights(pipe.text_encoder)
    return out


def test_key_names_shapes_and_alpha(pipe):
    inject_unet(pipe.unet, NetworkConfig(lora_rank=4, lora_alpha=2, conv_rank=2, conv_alpha=1))
    inject_text_encoder(pipe.text_encoder, NetworkConfig(lora_rank=4, lora_alpha=2))
    sd = to_kohya(_parts(pipe))
    q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    assert sd[q + ".lora_down.weight"].shape == (4, 32) and sd[q + ".lora_up.weight"].shape == (32, 4)
    assert sd[q + ".alpha"].item() == 2.0 and sd[q + ".lora_down.weight"].dtype == torch.float16
    for name in [
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_0_proj",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2",
        "lora_unet_mid_block_attentions_0_proj_in",
        "lora_unet_up_blocks_3_attentions_2_proj_out",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
        "lora_te_text_model_encoder_layers_11_self_attn_out_proj",
        "lora_te_text_model_encoder_layers_11_mlp_fc1",
        "lora_te_text_model_encoder_layers_0_mlp_fc2",
    ]:
        assert name + ".lora_up.weight" in sd, name
    conv = "lora_unet_down_blocks_0_resnets_0_conv1"
    assert sd[conv + ".lora_down.weight"].shape == (2, 32, 3, 3)
    assert sd[conv + ".lora_up.weight"].shape == (32, 2, 1, 1) and sd[conv + ".alpha"].item() == 1.0
    assert "lora_unet_down_blocks_0_downsamplers_0_conv.lora_down.weight" in sd
    assert sd["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"].shape == (4, 32, 1, 1)
    assert not any(k.startswith("lora_te_encoder") for k in sd)  # never the flattened transformers-5 path
    per_module = {k.rsplit(".", 2)[0] for k in sd}
    assert len(sd) == 3 * len(per_module)


def test_peft_kohya_peft_round_trip_is_exact(pipe):
    inject_unet(pipe.unet, NetworkConfig(lora_rank=4, lora_alpha=3, conv_rank=2))
    inject_text_encoder(pipe.text_encoder, NetworkConfig(lora_rank=4, lora_alpha=3))
    _randomise(pipe.unet, pipe.text_encoder)
    original = _parts(pipe)
    paths = {"unet": list(original["unet"]), "te": list(original["te"])}
    back = from_kohya(to_kohya(original, "float"), paths)
    for component in ("unet", "te"):
        assert back[component].keys() == original[component].keys()
        for name, w in original[component].items():
            assert torch.equal(back[component][name].down, w.down)
            assert torch.equal(back[component][name].up, w.up)
            assert back[component][name].alpha == w.alpha


@pytest.mark.parametrize("precision, tol", [("float", 1e-5), ("fp16", 2e-3)])
def test_diffusers_load_lora_weights_reproduces_the_trained_model(tiny_model, tmp_path, precision, tol):
    """The file, loaded by diffusers' own kohya loader into the same base, reproduces the trained model."""
    trained = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    inject_unet(trained.unet, NetworkConfig(lora_rank=4, lora_alpha=2, conv_rank=2, conv_alpha=1))
    inject_text_encoder(trained.text_encoder, NetworkConfig(lora_rank=4, lora_alpha=2))
    _randomise(trained.unet, trained.text_encoder, scale=0.3)
    cfg = build_config(
        {
            "base_model": "x",
            "train_data_dir": str(tmp_path),
            "save_precision": precision,
            "lora_rank": 4,
            "lora_alpha": 2,
            "conv_rank": 2,
            "conv_alpha": 1,
        }
    )
    path = save_lora(_parts(trained), tmp_path / "l.safetensors", cfg, RunFacts("sd1", "epsilon"))

    fresh = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    ids = fresh.tokenizer(["neon phone"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([500])
    with torch.no_grad():
        base = fresh.unet(latents, t, fresh.text_encoder(ids)[0]).sample
        fresh.load_lora_weights(str(path))
        cond_loaded = fresh.text_encoder(ids)[0]
        loaded = fresh.unet(latents, t, cond_loaded).sample
        cond_trained = trained.text_encoder(ids)[0]
        want = trained.unet(latents, t, cond_trained).sample
    assert not torch.allclose(base, want, atol=1e-3)  # the LoRA changes the output...
    assert torch.allclose(cond_loaded, cond_trained, atol=tol, rtol=tol)
    assert torch.allclose(loaded, want, atol=tol * 5, rtol=tol)  # ...and the reloaded file reproduces it


def test_metadata_and_hash(pipe, tmp_path):
    inject_unet(pipe.unet, NetworkConfig(lora_rank=4))
    cfg = build_config(
        {
            "base_model": "models/v1-5-pruned.safetensors",
            "train_data_dir": str(tmp_path),
            "output_name": "tech_phone",
            "lora_rank": 4,
            "learning_rate": 2e-4,
        }
    )
    path = save_lora(
        _parts(pipe, te=False),
        tmp_path / "tech_phone.safetensors",
        cfg,
        RunFacts("sd1", "epsilon", steps=7, num_images=3),
    )
    tensors, meta = read_lora_file(str(path))
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4"
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_v2"] == "False"
    assert meta["ss_output_name"] == "tech_phone" and meta["ss_steps"] == "7"
    assert meta["ss_learning_rate"] == "0.0002" and meta["ss_resolution"] == "(512, 512)"
    assert json.loads(meta["ss_network_args"]) == {}
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert meta["modelspec.sai_model_spec"] == "1.0.0"
    assert all(isinstance(v, str) for v in meta.values())
    # sshs_model_hash: sha256 of the tensor bytes of the file saved with only ss_* metadata (kohya).
    from safetensors.torch import save

    blob = save(tensors, {k: v for k, v in meta.items() if k.startswith("ss_")})
    n = int.from_bytes(blob[:8], "little")
    assert meta["sshs_model_hash"] == hashlib.sha256(blob[8 + n :]).hexdigest()
    with safe_open(str(path), "pt") as handle:
        assert handle.get_tensor(next(iter(tensors))).dtype == torch.float16
