"""Stacked LoRAs are exact: weight 0 is the base bit for bit, LoRAs add, and diffusers agrees with us."""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from lora_scripts.config import ModelConfig
from lora_scripts.generate.images import generate_images
from lora_scripts.generate.library import LoraLibrary
from lora_scripts.generate.prompts import LoraRef, PromptSpec
from lora_scripts.generate.stack import LoraStack
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion

SETTINGS = {"width": 64, "height": 64, "steps": 2, "seed": 7}
TO_K = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
CONV = "down_blocks.0.resnets.0.conv1"  # a LoCon 3x3 conv


def _stack(model_path, lora_dir):
    parts = load_components(ModelConfig(base_model=str(model_path)))
    pipe = StableDiffusion(parts).pipeline()
    return pipe, LoraStack({"unet": pipe.unet, "te": pipe.text_encoder}, parts.family, LoraLibrary(lora_dir))


def _image(pipe, stack, text):
    spec = PromptSpec.from_text(text, **SETTINGS)
    return np.asarray(generate_images(pipe, [spec], stack, progress=False)[0])


def test_weight_zero_is_the_base_model_bit_for_bit(tiny_model, lora_dir):
    pipe, stack = _stack(tiny_model["single_file"], lora_dir)
    base = _image(pipe, None, "neon phone")
    with_lora = _image(pipe, stack, "<lora:tech_phone:0.8> <lora:metal:-0.5> neon phone")
    assert not np.array_equal(base, with_lora)
    assert np.array_equal(base, _image(pipe, stack, "<lora:tech_phone:0> <lora:metal:0> neon phone"))
    assert np.array_equal(base, _image(pipe, stack, "neon phone"))  # nothing left behind after a LoRA


def _module_outputs(stack, module, x, weights):
    stack.activate([LoraRef(n, w) for n, w in weights.items()])
    with torch.no_grad():
        return module(x)


@pytest.mark.parametrize("path, shape", [(TO_K, (2, 77, 64)), (CONV, (1, 32, 8, 8))])
def test_loras_add_and_weights_scale_linearly(tiny_model, lora_dir, path, shape):
    pipe, stack = _stack(tiny_model["single_file"], lora_dir)
    stack.load(["tech_phone", "metal"])
    module = pipe.unet.get_submodule(path)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    base = _module_outputs(stack, module, x, {})
    a = _module_outputs(stack, module, x, {"tech_phone": 1.0}) - base
    b = _module_outputs(stack, module, x, {"metal": 1.0}) - base
    both = _module_outputs(stack, module, x, {"tech_phone": 0.7, "metal": -0.4}) - base
    assert a.abs().max() > 1e-3 and b.abs().max() > 1e-3
    torch.testing.assert_close(both, 0.7 * a - 0.4 * b, atol=1e-5, rtol=1e-4)
    big = _module_outputs(stack, module, x, {"tech_phone": 2.5}) - base
    torch.testing.assert_close(big, 2.5 * a, atol=1e-5, rtol=1e-4)
    stack.close()
    assert torch.equal(_module_outputs(stack, module, x, {}), base)


def _forward(pipe):
    ids = pipe.tokenizer(["neon phone"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cond = pipe.text_encoder(ids)[0]
        return cond, pipe.unet(latents, torch.tensor([500]), cond).sample


def test_stack_matches_diffusers_set_adapters_and_reads_peft_files(
    tiny_model, lora_dir, lora_parts, lora_writers
):
    """kohya (LoCon) files and diffusers/PEFT files: same result as diffusers' own loader, two at once."""
    peft_file = lora_writers["peft"](lora_parts[1], lora_dir / "metal_peft.safetensors")
    pipe, stack = _stack(tiny_model["diffusers"], lora_dir)
    stack.activate([LoraRef("tech_phone", 0.7), LoraRef("metal_peft", -0.4)])
    ours = _forward(pipe)

    ref = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    ref.load_lora_weights(str(lora_dir / "tech_phone.safetensors"), adapter_name="tech_phone")
    ref.load_lora_weights(str(peft_file), adapter_name="metal")
    ref.set_adapters(["tech_phone", "metal"], adapter_weights=[0.7, -0.4])
    want = _forward(ref)
    for got, expected in zip(ours, want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_diffusers_load_lora_weights_reads_every_key_on_our_pipeline(tiny_model, lora_dir):
    """Our pipeline is a real diffusers pipeline: its own load_lora_weights reads a kohya file (text-encoder
    keys included; an alias kept on the text encoder once made it raise IndexError) and gives diffusers'
    from_pretrained result."""
    pipe, _ = _stack(tiny_model["single_file"], lora_dir)
    ref = StableDiffusionPipeline.from_pretrained(tiny_model["diffusers"], local_files_only=True)
    base = _forward(pipe)
    for p in (pipe, ref):
        p.load_lora_weights(str(lora_dir / "tech_phone.safetensors"), adapter_name="tech_phone")
    ours, want = _forward(pipe), _forward(ref)
    assert not torch.allclose(ours[0], base[0], atol=1e-3)  # the text encoder's LoRA is applied too
    for got, expected in zip(ours, want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
