"""`lora merge`: the merged checkpoint generates what base + LoRA at 1.0 generates (diffusers' own loader),
in the layout it was read in; bad input is one sentence, exit 2, nothing written."""

import json

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from lora_scripts.config import ModelConfig
from lora_scripts.models.loader import load_components
from lora_scripts.tools.merge import MERGED_KEY, run_merge


@torch.no_grad()
def _outputs(unet, text_encoder, tokenizer):
    ids = tokenizer(["neon phone"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    cond = text_encoder(ids)[0]
    return cond, unet(latents, torch.tensor([500]), cond).sample


# (component, diffusers module, its weight in SD1's LDM single file): a 3x3 conv, a 1x1 conv, a linear, CLIP
UNET, TE = "model.diffusion_model.", "cond_stage_model.transformer.text_model."
MODULES = [
    ("unet", "down_blocks.0.resnets.0.conv1", UNET + "input_blocks.1.0.in_layers.2.weight"),
    ("unet", "down_blocks.0.attentions.0.proj_in", UNET + "input_blocks.1.1.proj_in.weight"),
    (
        "unet",
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
        UNET + "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
    ),
    ("te", "encoder.layers.0.self_attn.q_proj", TE + "encoder.layers.0.self_attn.q_proj.weight"),
]


def _lora(parts: dict, component: str, path: str):
    """The LoRA of one module (text encoder paths with or without transformers' `text_model.` level)."""
    found = [w for p, w in parts[component].items() if p.removeprefix("text_model.") == path]
    assert len(found) == 1, (component, path)  # the fixture LoRA covers it: no skipped check
    return found[0]


def _scaled_up_down(w, weight: float) -> torch.Tensor:
    """weight * alpha / rank * up @ down, written out (kxk conv: a 1x1 up over a kxk down), in float64."""
    rank = w.down.shape[0]
    full = w.up.flatten(1).double() @ w.down.flatten(1).double()
    return (full * (weight * w.alpha / rank)).reshape(w.up.shape[0], *w.down.shape[1:])


@pytest.fixture()
def style(loras, tmp_path):
    parts = loras.parts(rank=4, alpha=2, seed=3)  # every kohya target (LoCon convs too) + TE
    return parts, loras.save(parts, tmp_path / "style.safetensors")


def test_merged_single_file_equals_base_plus_lora(tiny_model, loras, style, tmp_path):
    parts, lora = style
    base = tiny_model["single_file"]
    out = tmp_path / "merged.safetensors"
    assert run_merge(str(base), [str(lora)], out) == "single_file"
    before, after = load_file(base), load_file(out)
    for component, path, key in MODULES:  # merged = base + 1.0 * alpha/rank * up @ down
        want = before[key].double() + _scaled_up_down(_lora(parts, component, path), 1.0)
        assert torch.allclose(after[key].double(), want, rtol=1e-5, atol=1e-6), key
    with safe_open(str(base), "pt") as a, safe_open(str(out), "pt") as b:
        assert set(a.keys()) == set(b.keys())  # same LDM layout, extra keys (betas, ema) kept
        assert all(a.get_slice(k).get_dtype() == b.get_slice(k).get_dtype() for k in a.keys())
        assert json.loads(b.metadata()[MERGED_KEY])[0]["file"] == "style.safetensors"
        assert b.metadata()["format"] == "pt"

    merged = load_components(ModelConfig(base_model=str(out)))
    got = _outputs(merged.unet, merged.text_encoder, merged.tokenizer)
    ref = loras.load_pipe(tiny_model["diffusers"])
    before = _outputs(ref.unet, ref.text_encoder, ref.tokenizer)
    ref.load_lora_weights(str(lora))  # diffusers' kohya loader, scale 1.0
    want = _outputs(ref.unet, ref.text_encoder, ref.tokenizer)
    assert not torch.allclose(before[1], want[1], atol=1e-2)  # the LoRA matters...
    assert torch.allclose(got[0], want[0], atol=1e-4, rtol=1e-4)  # ...and merging reproduces it
    assert torch.allclose(got[1], want[1], atol=1e-4, rtol=1e-4)


def test_diffusers_folder_in_folder_out_with_weight(tiny_model, loras, style, tmp_path):
    parts, lora = style
    out = tmp_path / "merged-diffusers"
    assert run_merge(str(tiny_model["diffusers"]), [f"{lora}:0.5"], out) == "diffusers"
    assert (out / "model_index.json").is_file() and (out / "scheduler").is_dir()
    assert json.loads((out / "merged_loras.json").read_text())[0]["weight"] == 0.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    models = {
        folder: {
            "unet": UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
            "te": CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        }
        for folder in (tiny_model["diffusers"], out)
    }
    base, merged = models[tiny_model["diffusers"]], models[out]
    for component, path, _ in MODULES:  # merged = base + 0.5 * alpha/rank * up @ down
        change = _scaled_up_down(_lora(parts, component, path), 0.5)
        want = base[component].get_submodule(path).weight.double() + change
        got = merged[component].get_submodule(path).weight.double()
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), path


def _bad(case, tiny_model, loras, tmp_path):
    out = tmp_path / "out" / "merged.safetensors"
    lora = loras.save(loras.parts(rank=2, every=9), tmp_path / "ok.safetensors")
    if case == "other_family":
        gen = torch.Generator()
        sdxl = {"lora_te1_text_model_encoder_layers_0_mlp_fc1": loras.random_lora((3072, 768), 4, gen)}
        save_file(
            {f"{k}.lora_down.weight": v.down for k, v in sdxl.items()}
            | {f"{k}.lora_up.weight": v.up for k, v in sdxl.items()},
            tmp_path / "xl.safetensors",
        )
        return [str(tmp_path / "xl.safetensors")], out, "SDXL LoRA"
    if case == "not_a_lora":
        save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 4)}, tmp_path / "ckpt.safetensors")
        return [str(lora), str(tmp_path / "ckpt.safetensors")], out, "is not a LoRA file"
    if case == "unwritable_folder":
        (tmp_path / "out").write_text("a file where the output folder should be")
        return [str(lora)], out, "Cannot write to the output folder"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["other_family", "not_a_lora", "unwritable_folder"])
def test_bad_input_is_one_sentence_exit_2_nothing_written(case, tiny_model, loras, tmp_path, cli):
    specs, out, words = _bad(case, tiny_model, loras, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("lora", "merge", str(tiny_model["single_file"]), *specs, "-o", str(out))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a folder
