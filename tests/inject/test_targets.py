import torch
from diffusers import StableDiffusionPipeline

from lora_scripts.config import NetworkConfig
from lora_scripts.inject.lora import inject_text_encoder, inject_unet, lora_parameters, read_weights
from lora_scripts.models.targets import text_targets, unet_targets


def _pipe(tiny_model):
    return StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)


def test_default_targets_match_kohya_sd15_counts(tiny_model):
    pipe = _pipe(tiny_model)
    # A kohya SD1.5 LoRA has 192 UNet modules (16 transformers x 12) and 72 text-encoder modules (12 x 6).
    assert len(unet_targets(pipe.unet, with_conv=False)) == 192
    assert len(text_targets(pipe.text_encoder)) == 72
    conv = unet_targets(pipe.unet, with_conv=True)
    assert sum(kind == "conv3x3" for kind in conv.values()) > 0
    assert "down_blocks.0.resnets.0.time_emb_proj" in conv


def test_injection_freezes_base_and_adds_fp32_lora(tiny_model):
    pipe = _pipe(tiny_model)
    pipe.unet.half()
    inject_unet(pipe.unet, NetworkConfig(lora_rank=4, conv_rank=2))
    trainable = [p for p in pipe.unet.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert len(trainable) == len(lora_parameters(pipe.unet))
    weights = read_weights(pipe.unet)
    assert weights["down_blocks.0.resnets.0.conv1"].down.shape[0] == 2
    assert weights["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"].down.shape[0] == 4
    assert all(torch.count_nonzero(w.up) == 0 for w in weights.values())  # starts as the base model


def test_text_encoder_injection(tiny_model):
    pipe = _pipe(tiny_model)
    inject_text_encoder(pipe.text_encoder, NetworkConfig(lora_rank=2))
    assert len(read_weights(pipe.text_encoder)) == 72
