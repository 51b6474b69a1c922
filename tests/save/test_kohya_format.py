"""The saved file is what A1111/ComfyUI/diffusers read: names, shapes, scale, metadata, and a real reload."""

import hashlib
import io
import json

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open
from safetensors.torch import save, save_file

from lora_scripts.config import NetworkConfig, build_config
from lora_scripts.inject.lora import inject_text_encoder, inject_unet, read_weights
from lora_scripts.save.kohya import from_kohya, read_lora_file, to_kohya
from lora_scripts.save.metadata import RunFacts, add_hashes
from lora_scripts.save.writer import save_lora

# what the SD family reports for an SD 1.x epsilon model (models/sd.py StableDiffusion.metadata_facts)
SD1_FACTS = {
    "ss_v2": "False",
    "ss_base_model_version": "sd_v1",
    "ss_v_parameterization": "False",
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.prediction_type": "epsilon",
}


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
    path = save_lora(_parts(trained), tmp_path / "l.safetensors", cfg, RunFacts("sd1", SD1_FACTS))

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
        RunFacts("sd1", SD1_FACTS, steps=7, num_images=3),
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
    # the hashes kohya gives this file (values: test_sshs_hashes_match_a_known_answer); WebUI hashes the
    # file on disk; the file is under 1 MiB, so the legacy hash reads nothing: sha256(b"")[:8]
    with open(path, "rb") as handle:
        assert meta["sshs_model_hash"] == _addnet_hash_safetensors(handle)
    assert _kohya_precalculate_safetensors_hashes(tensors, meta) == (meta["sshs_model_hash"], "e3b0c442")
    assert meta["sshs_legacy_hash"] == "e3b0c442"
    with safe_open(str(path), "pt") as handle:
        assert handle.get_tensor(next(iter(tensors))).dtype == torch.float16


# --- sshs_* hashes: a known answer ------------------------------------------------------------------------
# kohya-ss/sd-scripts library/train_util.py, as written there (precalculate_safetensors_hashes,
# addnet_hash_safetensors, addnet_hash_legacy); WebUI's additional-networks extension computes the same.
# KNOWN_* were computed with these functions and cross-checked by hashing the fp16 bytes of the tensors
# concatenated in name order (safetensors' data layout), without safetensors' writer.
KNOWN_MODEL_HASH = "79c5335161024a085c9436292e55f110701ad94a88820f80269f3281e703a8a6"
KNOWN_LEGACY_HASH = "b8607fdf"


def _addnet_hash_safetensors(b):
    hash_sha256 = hashlib.sha256()
    blksize = 1024 * 1024
    b.seek(0)
    header = b.read(8)
    n = int.from_bytes(header, "little")
    offset = n + 8
    b.seek(offset)
    for chunk in iter(lambda: b.read(blksize), b""):
        hash_sha256.update(chunk)
    return hash_sha256.hexdigest()


def _addnet_hash_legacy(b):
    m = hashlib.sha256()
    b.seek(0x100000)
    m.update(b.read(0x10000))
    return m.hexdigest()[0:8]


def _kohya_precalculate_safetensors_hashes(tensors, metadata):
    metadata = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    b = io.BytesIO(save(tensors, metadata))
    return _addnet_hash_safetensors(b), _addnet_hash_legacy(b)


def _known_lora() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Fixed tensors, exact in fp16 on any machine, 1.28 MB: past the 1 MiB offset the legacy hash reads."""
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    down = ((torch.arange(8 * 40000) % 251 - 125).to(torch.float16) / 64).reshape(8, 40000)
    up = ((torch.arange(40000 * 8) % 127 - 63).to(torch.float16) / 32).reshape(40000, 8)
    tensors = {
        f"{name}.lora_down.weight": down,
        f"{name}.lora_up.weight": up,
        f"{name}.alpha": torch.tensor(4.0, dtype=torch.float16),
    }
    meta = {"ss_network_dim": "8", "ss_network_alpha": "4", "ss_output_name": "known_answer"}
    return tensors, {**meta, "modelspec.title": "not hashed"}


def test_sshs_hashes_match_a_known_answer(tmp_path):
    tensors, meta = _known_lora()
    assert _kohya_precalculate_safetensors_hashes(tensors, meta) == (KNOWN_MODEL_HASH, KNOWN_LEGACY_HASH)
    hashed = add_hashes(tensors, meta)
    assert hashed["sshs_model_hash"] == KNOWN_MODEL_HASH
    assert hashed["sshs_legacy_hash"] == KNOWN_LEGACY_HASH
    assert {k: hashed[k] for k in meta} == meta  # the rest of the metadata is kept as it was
    # user metadata (title, description...) can change without changing the hashes; only ss_* is hashed
    renamed = add_hashes(tensors, {**meta, "modelspec.title": "a much longer title that moves every offset"})
    assert (renamed["sshs_model_hash"], renamed["sshs_legacy_hash"]) == (KNOWN_MODEL_HASH, KNOWN_LEGACY_HASH)
    # and the file written with them shows the same hash in WebUI, which hashes the file on disk
    path = tmp_path / "known.safetensors"
    save_file(tensors, path, hashed)
    with open(path, "rb") as handle:
        assert _addnet_hash_safetensors(handle) == KNOWN_MODEL_HASH
