"""`lora inspect`: family, rank/alpha per group, modules, trigger words, tags, facts, size; foreign files."""

import json

import pytest
import torch
from safetensors.torch import save_file

from lora_scripts.errors import FormatError
from lora_scripts.inject.lyco import LycoWeights
from lora_scripts.save.kohya import to_kohya
from lora_scripts.save.lora_family import detect_lora_family
from lora_scripts.tools.inspect_lora import describe
from lora_scripts.tools.lora_io import write_lora


def test_report_of_a_kohya_file(loras, tmp_path):
    parts = loras.parts(rank=4, alpha=2)
    path = loras.save(parts, tmp_path / "neon.safetensors")
    report = describe(path)
    assert report["family"] == "sd1" and "ss_base_model_version" in report["family_from"]  # tiny: no shapes
    groups = {g["group"]: g for g in report["groups"]}
    assert list(groups) == ["TE", "UNet down", "UNet mid", "UNet up"]
    assert groups["TE"]["modules"] == len(parts["te"]) and groups["TE"]["ranks"] == "4"
    assert groups["UNet mid"]["alphas"] == "2"
    assert report["modules"] == len(parts["te"]) + len(parts["unet"])
    assert set(report["kinds"]) == {"attention", "feed-forward", "proj in/out", "resnet/conv (LoCon)"}
    assert report["trigger_words"] == ["neon style"] and "all 3 captions" in report["trigger_from"]
    assert report["top_tags"][:2] == [("neon style", 3), ("phone", 2)]
    assert report["facts"]["steps"] == "120" and report["facts"]["output name"] == "neon"
    assert report["size_bytes"] == path.stat().st_size and report["dtypes"] == ["float32"]


def detect_family_of(modules, metadata):
    return detect_lora_family({n: w.in_features for n, w in modules.items()}, metadata)


def test_family_from_shapes_and_prefixes(loras):
    gen = torch.Generator()

    def lora(width):
        return loras.random_lora((320, width), 4, gen)

    k = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    assert detect_family_of({k: lora(768)}, {})[0] == "sd1"
    assert detect_family_of({k: lora(1024)}, {"ss_base_model_version": "sd_v1"})[0] == "sd2"  # shapes win
    assert detect_family_of({"lora_te1_text_model_encoder_layers_0_mlp_fc1": lora(768)}, {})[0] == "sdxl"
    q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    assert detect_family_of({q: lora(1024)}, {})[0] == "sd2"
    assert (
        detect_family_of({q: lora(64)}, {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"})[0]
        == "sdxl"
    )
    assert detect_family_of({q: lora(64)}, {})[0] is None


def test_report_of_loha_and_lokr_modules(tmp_path):
    """Rank, kind and the family's width of LoHa/LoKr modules come from their factors: a LoHa of dim 8 on
    SD1's cross-attention (768 wide), a LoKr of full factors on a 3x3 conv_in (no rank of its own: "full")."""
    gen = torch.Generator().manual_seed(0)
    loha = {
        f"hada_w{i}_{ab}": torch.randn(s, generator=gen)
        for i in (1, 2)
        for ab, s in (("a", (320, 8)), ("b", (8, 768)))
    }
    lokr = {"lokr_w1": torch.randn(4, 1, generator=gen), "lokr_w2": torch.randn(80, 4, 3, 3, generator=gen)}
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    unet = {
        attn: LycoWeights("loha", loha, 4.0, (320, 768)),
        "conv_in": LycoWeights("lokr", lokr, 1.0, (320, 4, 3, 3)),
    }
    path = write_lora(to_kohya({"unet": unet}, "float"), tmp_path / "lyco.safetensors", {"ss_v2": "True"})
    report = describe(path)
    assert (report["family"], report["family_from"]) == ("sd1", "cross-attention context width 768")
    groups = {g["group"]: g["ranks"] for g in report["groups"]}
    assert groups == {"UNet down": "8", "other": "full"}
    assert report["kinds"] == {"attention": 1, "resnet/conv (LoCon)": 1}
    assert report["network_types"] == {"LoHa": 1, "LoKr": 1}


def test_other_trainers_files_and_non_lora_files(tmp_path):
    """No alpha (= rank), LyCORIS tensors alongside, no metadata at all: still described."""
    name = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_q"
    save_file(
        {
            f"{name}.lora_down.weight": torch.zeros(8, 64, dtype=torch.float16),
            f"{name}.lora_up.weight": torch.zeros(64, 8, dtype=torch.float16),
            "lora_unet_mid_block_resnets_0_conv1.hada_w1_a": torch.zeros(64, 4),
        },
        tmp_path / "lyco.safetensors",
    )
    report = describe(tmp_path / "lyco.safetensors")
    assert report["groups"] == [{"group": "UNet mid", "modules": 1, "ranks": "8", "alphas": "8"}]
    assert report["other_tensors"] == 1 and report["family"] is None and report["facts"] == {}
    save_file({"model.diffusion_model.out.2.weight": torch.zeros(4, 4)}, tmp_path / "ckpt.safetensors")
    with pytest.raises(FormatError, match="is not a LoRA file"):
        describe(tmp_path / "ckpt.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(FormatError, match="not a readable .safetensors"):
        describe(tmp_path / "text.safetensors")


def test_cli_inspect_prints_tables(loras, tmp_path, cli):
    tags = json.dumps({"10_neon": {"neon style": 3, "[blurry]": 2, "laptop": 1}})  # [..]: A1111's syntax
    meta = {**loras.meta, "ss_tag_frequency": tags}
    path = loras.save(loras.parts(rank=4, every=3), tmp_path / "[v2]neon.safetensors", meta)
    result = cli("lora", "inspect", str(path))
    assert result.returncode == 0, result.stderr
    for text in ("sd1", "UNet down", "neon style", "learning rate", "Top 3 tags", "KB", "[blurry]"):
        assert text in result.stdout, text
    assert f"LoRA{path}" in "".join(result.stdout.split())  # the name as it is, not read as rich markup
    assert json.loads(json.dumps(describe(path)))["trigger_words"] == ["neon style"]  # what --json prints


def test_cli_inspect_of_a_folder_names_the_lora_files_in_it(loras, tmp_path, cli):
    """A folder is not 'missing': the sentence says it is one and names a file in it to give instead."""
    folder = tmp_path / "Lora"
    folder.mkdir()
    result = cli("lora", "inspect", str(folder))
    assert result.returncode == 2 and "does not exist" not in result.stderr, result.stderr
    assert f"'{folder}' is a folder, but this command needs a LoRA .safetensors file" in result.stderr
    assert "holds no .safetensors file" in result.stderr and "Traceback" not in result.stderr
    for name in ("b_neon", "a_metal", "c_glass"):
        loras.save(loras.parts(rank=2), folder / f"{name}.safetensors")
    result = cli("lora", "inspect", str(folder))
    assert result.returncode == 2, result.stderr
    assert f"e.g. '{folder / 'a_metal.safetensors'}' or '{folder / 'b_neon.safetensors'}'." in result.stderr
    assert "c_glass" not in result.stderr and result.stderr.count("Error:") == 1


def test_a_folder_gets_a_chinese_hint(tmp_path):
    from lora_scripts.errors_zh import hint_zh

    with pytest.raises(FormatError) as err:
        describe(tmp_path)
    assert hint_zh(str(err.value)) == "填 LoRA 文件本身（.safetensors），不是它所在的文件夹"
