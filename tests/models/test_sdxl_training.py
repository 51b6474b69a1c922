"""An SDXL LoRA trained on the tiny SDXL diffusers folder: kohya's SDXL layout (SGM UNet names, lora_te1_
and lora_te2_, OpenCLIP-G's q/k/v/out_proj as full sets, sdxl metadata), and diffusers' own SDXL loader
takes every key and gives the trained model's outputs."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from safetensors import safe_open
from safetensors.torch import load_file

from lora_scripts.config import build_config
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.train import run as run_module
from lora_scripts.train.run import run_training


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))["diffusers"]


def _train(folder, data, tmp_path, **extra):
    kept = {}
    real = run_module.Trainer

    class Keeping(real):
        def train(self):
            result = super().train()
            kept.update(unet=self.model.unet, te1=self.model.text_encoder, te2=self.model.text_encoder_2)
            kept["model"] = self.model
            return result

    config = {
        "base_model": str(folder),
        "train_data_dir": str(data),
        "output_dir": str(tmp_path / "out"),
        "output_name": "xl",
        "resolution": 64,
        "lora_rank": 4,
        "lora_alpha": 2,
        "conv_rank": 2,
        "batch_size": 2,
        "max_train_steps": 2,
        "learning_rate": 5e-2,
        "save_precision": "float",
        "device": "cpu",
        "doctor": "off",
        **extra,
    }
    run_module.Trainer = Keeping
    try:
        result = run_training(build_config(config))
    finally:
        run_module.Trainer = real
    return result, kept


def test_kohya_sdxl_layout_and_metadata(sdxl_folder, sample_data, tmp_path):
    result, _ = _train(sdxl_folder, sample_data, tmp_path, train_text_encoder=True)
    names = {k.rsplit(".", 2)[0] for k in load_file(result.lora_path) if k.endswith("lora_down.weight")}
    unet = {n for n in names if n.startswith("lora_unet_")}
    assert unet and all(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_\d", n) for n in unet)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in unet
    assert "lora_unet_output_blocks_2_2_conv" in unet  # the upsampler A1111 mis-maps in diffusers form
    te2 = {n for n in names if n.startswith("lora_te2_")}
    layers = {re.search(r"layers_(\d+)_", n).group(1) for n in te2}
    for i in layers:  # A1111 folds q/k/v into in_proj and applies them only as a complete set
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            assert f"lora_te2_text_model_encoder_layers_{i}_self_attn_{proj}" in te2
    te1_layers = {re.search(r"layers_(\d+)_", n).group(1) for n in names if n.startswith("lora_te1_")}
    assert te1_layers == {"0", "1"}  # SDXL reads CLIP-L's penultimate layer: the last one gets no LoRA
    with safe_open(str(result.lora_path), framework="pt") as f:
        meta = f.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"


def test_diffusers_loads_every_key_with_the_trained_outputs(sdxl_folder, sample_data, tmp_path):
    result, kept = _train(sdxl_folder, sample_data, tmp_path, train_text_encoder=True)
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, local_files_only=True)
    state, _alphas = pipe.lora_state_dict(str(result.lora_path))
    file_modules = {
        k.rsplit(".", 2)[0] for k in load_file(result.lora_path) if k.endswith("lora_down.weight")
    }
    assert len({k.rsplit(".lora", 1)[0] for k in state if "lora_A" in k or ".down." in k}) == len(
        file_modules
    )
    pipe.load_lora_weights(str(result.lora_path))
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    ids = pipe.tokenizer(["neon phone"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    ids2 = pipe.tokenizer_2(
        ["neon phone"], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        for ours, theirs, tokens in (
            (kept["te1"], pipe.text_encoder, ids),
            (kept["te2"], pipe.text_encoder_2, ids2),
        ):
            a = ours(tokens, output_hidden_states=True).hidden_states[-2]
            b = theirs(tokens, output_hidden_states=True).hidden_states[-2]
            assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
        cond = torch.randn(1, 77, 64, generator=g)
        added = {
            "text_embeds": torch.randn(1, 32, generator=g),
            "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]]),
        }
        base = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, local_files_only=True).unet
        before = base(latents, 500, cond, added_cond_kwargs=added).sample
        want = kept["unet"](latents, 500, cond, added_cond_kwargs=added).sample
        got = pipe.unet(latents, 500, cond, added_cond_kwargs=added).sample
    assert (want - before).abs().max() > 1e-4  # the LoRA changes the UNet
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_the_sgm_single_file_loads_exactly_as_the_folder(sdxl_folder):
    """sd_xl_base_1.0.safetensors's layout (written by our SGM writer, read with diffusers' single-file
    converters and sizes from the tensors) gives the same weights as the diffusers folder."""
    from lora_scripts.config import ModelConfig
    from lora_scripts.models.sdxl import load_sdxl_folder, load_sdxl_single_file

    single = sdxl_folder.parent / "tiny-sdxl.safetensors"
    with safe_open(str(single), framework="pt") as f:
        keys = list(f.keys())
    assert any(
        k.startswith("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj") for k in keys
    )
    a = load_sdxl_single_file(str(single), ModelConfig(base_model=str(single)))
    b = load_sdxl_folder(str(sdxl_folder), ModelConfig(base_model=str(sdxl_folder)))
    for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
        mine, theirs = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert mine.keys() == theirs.keys(), part
        assert all(torch.equal(mine[k].float(), theirs[k].float()) for k in theirs), part
    assert a.vae.config.scaling_factor == b.vae.config.scaling_factor == 0.13025


def test_generate_draws_with_an_sdxl_lora_and_refuses_an_sd1_one(
    sdxl_folder, sample_data, tmp_path, cli, tiny_model, base_config
):
    import numpy as np
    from PIL import Image

    result, _ = _train(sdxl_folder, sample_data, tmp_path, train_text_encoder=True)
    single = sdxl_folder.parent / "tiny-sdxl.safetensors"
    out = tmp_path / "generated"
    args = ["generate", "neon phone", "-m", str(single), "-l", str(result.lora_path.parent), "--lora", "xl"]
    done = cli(
        *args, "--weights", "0,1", "--seeds", "3", "--steps", "2", "-W", "64", "-H", "64", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    base, styled = sorted(out.glob("0*.png"))
    assert not np.array_equal(np.asarray(Image.open(base)), np.asarray(Image.open(styled)))
    assert "Model: tiny-sdxl" in Image.open(styled).text["parameters"]
    sd1 = run_training(
        build_config({**base_config, "output_dir": str(tmp_path / "sd1"), "output_name": "old"})
    )
    args = ["generate", "<lora:old:0.7> neon phone", "-m", str(single), "-l", str(sd1.lora_path.parent)]
    done = cli(*args, "--steps", "2", "-W", "64", "-H", "64", "-o", str(tmp_path / "no"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is a LoRA for SD 1.x, but the base model is SDXL" in " ".join(done.stderr.split())


def test_sdxl_trains_at_1024_unless_told_and_the_dry_run_says_so(sdxl_folder, sample_data, tmp_path, cli):
    import yaml

    single = sdxl_folder.parent / "tiny-sdxl.safetensors"
    config = {
        "base_model": str(single),
        "train_data_dir": str(sample_data),
        "output_dir": str(tmp_path / "o"),
    }
    path = tmp_path / "xl.yaml"
    path.write_text(yaml.safe_dump({**config, "train_text_encoder": True}), encoding="utf-8")
    done = cli("train", "-c", str(path), "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    text = " ".join((done.stdout + done.stderr).split())
    assert "resolution: 1024" in text and "max_bucket_reso: 2048" in text
    assert "SDXL base model: training at 1024 px" in text and "rarely helps a style" in text
    path.write_text(yaml.safe_dump({**config, "resolution": 768}), encoding="utf-8")
    done = cli("train", "-c", str(path), "--dry-run")
    text = " ".join((done.stdout + done.stderr).split())
    assert "resolution: 768" in text and "max_bucket_reso: 1024" in text


def test_lora_merge_bakes_an_sdxl_lora_into_the_single_file(sdxl_folder, sample_data, tmp_path, cli):
    """The merged SGM file has the base's keys, and its UNet and encoders equal diffusers' own
    load_lora_weights + fuse_lora on the base."""
    from lora_scripts.config import ModelConfig
    from lora_scripts.models.sdxl import load_sdxl_single_file

    result, _ = _train(sdxl_folder, sample_data, tmp_path, train_text_encoder=True)
    single = sdxl_folder.parent / "tiny-sdxl.safetensors"
    out = tmp_path / "merged.safetensors"
    done = cli("lora", "merge", str(single), f"{result.lora_path}:0.8", "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    with safe_open(str(single), framework="pt") as a, safe_open(str(out), framework="pt") as b:
        assert set(a.keys()) == set(b.keys())
    merged = load_sdxl_single_file(str(out), ModelConfig(base_model=str(out)))
    pipe = StableDiffusionXLPipeline.from_pretrained(sdxl_folder, local_files_only=True)
    pipe.load_lora_weights(str(result.lora_path))
    pipe.fuse_lora(lora_scale=0.8, components=["unet", "text_encoder", "text_encoder_2"])
    base = load_sdxl_single_file(str(single), ModelConfig(base_model=str(single)))
    for part in ("unet", "text_encoder", "text_encoder_2"):
        mine, before = getattr(merged, part).state_dict(), getattr(base, part).state_dict()
        theirs = {k.replace(".base_layer", ""): v for k, v in getattr(pipe, part).state_dict().items()}
        assert any(not torch.equal(mine[k], before[k]) for k in mine), part  # the LoRA changed this part
        assert all(torch.allclose(mine[k], theirs[k], atol=1e-5) for k in mine), part


@pytest.mark.parametrize("cache_latents", ["no", "disk"])
def test_the_unet_is_conditioned_on_the_image_size_and_its_crop(
    sdxl_folder, tmp_path, monkeypatch, cache_latents
):
    """A 120x60 image in a 64x64 bucket: scaled to 128x64, 32 columns cut on the left: SDXL's time ids
    (original h, w, crop top, left, target h, w) reach the real UNet, from pixels and from latent caches."""
    from diffusers import UNet2DConditionModel
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (120, 60), (200, 40, 90)).save(data / "wide.png")
    (data / "wide.txt").write_text("neon phone", encoding="utf-8")
    seen, real_forward = [], UNet2DConditionModel.forward

    def recording(self, *args, added_cond_kwargs=None, **kwargs):
        seen.append(added_cond_kwargs["time_ids"].tolist())
        return real_forward(self, *args, added_cond_kwargs=added_cond_kwargs, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", recording)
    extra = {"enable_bucket": False, "batch_size": 1, "max_train_steps": 1, "cache_latents": cache_latents}
    _train(sdxl_folder, data, tmp_path, **extra)
    assert seen and all(ids == [[60.0, 120.0, 0.0, 32.0, 64.0, 64.0]] for ids in seen)


ALL_PARKED = ("vae", "text_encoder", "text_encoder_2")


def _devices(model, names):
    return {name: {p.device.type for p in getattr(model, name).parameters()} for name in names}


@pytest.mark.parametrize(
    ("extra", "parked"),
    [
        ({}, ALL_PARKED),
        ({"train_text_encoder": True}, ("vae",)),  # trained encoders are neither cached nor parked
        ({"cache_latents": "no"}, ("text_encoder", "text_encoder_2")),
        ({"mixed_precision": "bf16", "gradient_checkpointing": True}, ALL_PARKED),  # the 8 GB recipe
    ],
)
def test_cached_inputs_park_what_made_them_and_samples_still_draw(
    sdxl_folder, sample_data, tmp_path, extra, parked, monkeypatch
):
    """configs/sdxl_8gb.yaml: with latents and text-encoder outputs cached, the VAE and both encoders leave
    the training device; samples bring them back for the time they draw (on a GPU: test_sdxl_gpu.py)."""
    options = {
        "cache_latents": "memory",
        "cache_text_encoder_outputs": True,
        "sample_prompts": ["neon phone"],
        "sample_every_n_steps": 1,
        "sample_steps": 2,
        **extra,
    }
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result, kept = _train(sdxl_folder, sample_data, tmp_path, device=device, **options)
    model = kept["model"]
    assert model.parked == parked
    assert _devices(model, parked) == {name: {"cpu"} for name in parked}
    kept_on = [n for n in ("vae", "text_encoder", "text_encoder_2") if n not in parked]
    assert _devices(model, kept_on) == {name: {torch.device(device).type} for name in kept_on}
    assert sorted(result.samples) == [1, 2]


def test_the_vae_computes_in_float32_under_mixed_precision(sdxl_folder, sample_data, tmp_path):
    """bf16 autocast on the CPU stands in for a GPU's fp16 (where SDXL's VAE overflows to NaN): every VAE conv
    computes in float32, encoding the training images (no latent cache) and decoding the samples, while the
    UNet's convs do run in bf16 (autocast was on)."""
    seen: list[tuple[int, torch.dtype]] = []

    def record(module, _args, output):
        if isinstance(module, torch.nn.Conv2d):
            seen.append((id(module), output.dtype))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        result, kept = _train(
            sdxl_folder,
            sample_data,
            tmp_path,
            mixed_precision="bf16",
            cache_latents="no",
            sample_prompts=["neon phone"],
            sample_every_n_steps=2,
            sample_steps=2,
        )
    finally:
        handle.remove()
    model = kept["model"]
    vae = {id(m): name.split(".")[0] for name, m in model.vae.named_modules()}
    dtypes = {part: {d for i, d in seen if vae.get(i) == part} for part in ("encoder", "decoder")}
    assert dtypes == {"encoder": {torch.float32}, "decoder": {torch.float32}}
    unet = {id(m) for m in model.unet.modules()}
    assert torch.bfloat16 in {d for i, d in seen if i in unet}
    assert sorted(result.samples) == [2]
