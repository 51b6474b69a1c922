"""Round trip: tiny diffusers models -> LDM layout -> diffusers' single-file readers -> same tensors."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
    create_diffusers_clip_model_from_ldm,
    is_clip_model,
    is_open_clip_model,
)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from lora_scripts.errors import FormatError
from lora_scripts.models.ldm_layout import (
    clip_to_ldm,
    open_clip_to_ldm,
    pipeline_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)


def _unet(sd2: bool) -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(32, 64, 64, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=64 if sd2 else 32,
        attention_head_dim=(2, 4, 4, 4) if sd2 else 8,
        use_linear_projection=sd2,
        norm_num_groups=32,
        sample_size=8,
    )


def _vae() -> AutoencoderKL:
    torch.manual_seed(1)
    return AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def _clip(sd2: bool) -> CLIPTextModel:
    torch.manual_seed(2)
    extra = {"hidden_act": "gelu", "projection_dim": 64} if sd2 else {}
    config = CLIPTextConfig(
        hidden_size=64 if sd2 else 32,
        intermediate_size=128 if sd2 else 64,
        num_attention_heads=4,
        num_hidden_layers=3 if sd2 else 12,
        vocab_size=49408,
        max_position_embeddings=77,
        **extra,
    )
    return CLIPTextModel(config)


def _assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, tensor in want.items():
        assert torch.equal(got[key], tensor), key


def _unet_roundtrip(sd2: bool) -> dict:
    unet = _unet(sd2)
    ldm = unet_to_ldm(unet.state_dict())
    _assert_same(convert_ldm_unet_checkpoint(ldm, dict(unet.config)), unet.state_dict())
    return ldm


def test_unet_sd1_roundtrip_and_names():
    ldm = _unet_roundtrip(sd2=False)
    p = "model.diffusion_model."
    for name in (
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
        "input_blocks.3.0.op.weight",
        "input_blocks.11.0.out_layers.3.weight",
        "middle_block.1.proj_in.weight",
        "middle_block.2.emb_layers.1.weight",
        "output_blocks.2.1.conv.weight",
        "output_blocks.5.2.conv.weight",
        "output_blocks.11.0.skip_connection.weight",
        "time_embed.0.weight",
        "out.2.weight",
    ):
        assert p + name in ldm, name
    assert ldm[p + "middle_block.1.proj_in.weight"].ndim == 4


def test_unet_sd2_roundtrip_linear_projection():
    ldm = _unet_roundtrip(sd2=True)
    assert ldm["model.diffusion_model.middle_block.1.proj_in.weight"].ndim == 2


def test_unet_rejects_unknown_keys_and_wrong_levels():
    sd = _unet(sd2=False).state_dict()
    with pytest.raises(FormatError):
        unet_to_ldm(sd, num_levels=3)
    with pytest.raises(FormatError, match="class_embedding"):
        unet_to_ldm({**sd, "class_embedding.linear_1.weight": torch.zeros(1)})


def test_vae_roundtrip_and_conv_attention():
    vae = _vae()
    ldm = vae_to_ldm(vae.state_dict())
    _assert_same(convert_ldm_vae_checkpoint(ldm, dict(vae.config)), vae.state_dict())
    q = ldm["first_stage_model.decoder.mid.attn_1.q.weight"]
    assert q.shape == (64, 64, 1, 1)
    for name in (
        "encoder.down.2.block.0.nin_shortcut.weight",
        "decoder.up.3.upsample.conv.weight",
        "encoder.down.0.downsample.conv.weight",
        "decoder.mid.block_2.conv1.weight",
        "encoder.norm_out.weight",
        "decoder.mid.attn_1.proj_out.weight",
        "post_quant_conv.weight",
    ):
        assert "first_stage_model." + name in ldm, name
    # diffusers up_blocks.0 is the deepest level, LDM up.3.
    assert torch.equal(
        ldm["first_stage_model.decoder.up.3.block.0.conv1.weight"],
        vae.state_dict()["decoder.up_blocks.0.resnets.0.conv1.weight"],
    )


def _strip_text_model(sd: dict) -> dict:
    # transformers >= 5.6 CLIPTextModel has no text_model. wrapper (as diffusers' loader does).
    return {k.removeprefix("text_model."): v for k, v in sd.items()}


@pytest.mark.parametrize("legacy_prefix", [False, True])
def test_clip_sd1_roundtrip(legacy_prefix):
    sd = _clip(sd2=False).state_dict()
    src = {("text_model." + k if legacy_prefix else k): v for k, v in sd.items()}
    src["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    ldm = clip_to_ldm(src)
    assert "cond_stage_model.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight" in ldm
    assert not any(k.endswith("position_ids") for k in ldm)
    _assert_same(_strip_text_model(convert_ldm_clip_checkpoint(ldm)), sd)


def test_open_clip_sd2_roundtrip():
    model = _clip(sd2=True)
    sd = model.state_dict()
    ldm = open_clip_to_ldm(sd)
    p = "cond_stage_model.model."
    assert ldm[p + "transformer.resblocks.0.attn.in_proj_weight"].shape == (192, 64)
    for name in (
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.bias",
        "transformer.resblocks.2.mlp.c_proj.weight",
        "transformer.resblocks.1.ln_2.weight",
    ):
        assert p + name in ldm, name
    _assert_same(_strip_text_model(convert_open_clip_checkpoint(model, ldm)), sd)


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_pipeline_to_ldm_text_encoder_is_recognised_by_diffusers(family):
    sd2 = family == "sd2"
    ckpt = pipeline_to_ldm(_unet(sd2).state_dict(), _vae().state_dict(), _clip(sd2).state_dict(), family)
    # (diffusers tells v1 from v2 by the real 1024-wide cross-attention, which tiny models do not have.)
    assert (is_open_clip_model if sd2 else is_clip_model)(ckpt)
    assert "model.diffusion_model.output_blocks.11.0.skip_connection.weight" in ckpt
    assert len({k.split(".")[0] for k in ckpt}) == 3
    with pytest.raises(FormatError):
        pipeline_to_ldm({}, {}, {}, "sdxl")


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_single_file_loads_back_with_from_single_file(tmp_path, family):
    """The written .safetensors loads through diffusers' public single-file API (configs from a local dir)."""
    sd2 = family == "sd2"
    unet, vae, clip = _unet(sd2), _vae(), _clip(sd2)
    unet.save_config(tmp_path / "unet")
    vae.save_config(tmp_path / "vae")
    clip.config.save_pretrained(tmp_path / "text_encoder")
    path = tmp_path / "model.safetensors"
    save_file(pipeline_to_ldm(unet.state_dict(), vae.state_dict(), clip.state_dict(), family), path)
    kw = {"config": str(tmp_path), "local_files_only": True}
    loaded = [
        UNet2DConditionModel.from_single_file(str(path), subfolder="unet", **kw),
        AutoencoderKL.from_single_file(str(path), subfolder="vae", **kw),
        create_diffusers_clip_model_from_ldm(CLIPTextModel, load_file(path), subfolder="text_encoder", **kw),
    ]
    for original, back in zip((unet, vae, clip), loaded, strict=True):
        _assert_same(back.state_dict(), original.state_dict())
