"""`lora resize` and `lora merge-loras` on SDXL LoRA files trained on the tiny SDXL: the result keeps SDXL's
metadata, kohya's SGM UNet names and OpenCLIP-G's (lora_te2_) q/k/v/out_proj sets whole, and diffusers' own
SDXL loader applies every module of it as the kohya rule (up @ down * alpha / rank, written out here) says.
A LoRA of one family with one of another is refused in one sentence: merged together, or as init_lora of a
training run on the other family's base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import StableDiffusionXLPipeline
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lora_scripts.config import build_config
from lora_scripts.demo import make_sample_images
from lora_scripts.models.tiny_sdxl import save_tiny_sdxl
from lora_scripts.progress import FILE_NAME
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.train.run import run_training

pytestmark = pytest.mark.slow

XL_FACTS = {
    "ss_base_model_version": "sdxl_base_v1-0",
    "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
}
COMPONENTS = {"unet": "unet", "text_encoder": "te1", "text_encoder_2": "te2"}  # diffusers -> kohya name
DOWN = ".lora_down.weight"


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    """(base paths, images, {"a": file, "b": file}): two SDXL LoCon LoRAs with both text encoders, of other
    ranks; the linear rank + conv rank sums match (4 + 2 = 2 + 4), so an exact merge has one alpha."""
    root = tmp_path_factory.mktemp("xl_tools")
    base = save_tiny_sdxl(root / "model")
    images = root / "images"
    make_sample_images(images, count=6)
    files = {}
    for name, rank, conv, seed in (("a", 4, 2, 1), ("b", 2, 4, 2)):
        config = {
            "base_model": str(base["diffusers"]),
            "train_data_dir": str(images),
            "output_dir": str(root / name),
            "output_name": name,
            "resolution": 64,
            "lora_rank": rank,
            "lora_alpha": 2,
            "conv_rank": conv,
            "conv_alpha": 2,
            "train_text_encoder": True,
            "batch_size": 2,
            "max_train_steps": 2,
            "learning_rate": 5e-2,
            "seed": seed,
            "save_precision": "float",
            "device": "cpu",
            "doctor": "off",
        }
        files[name] = run_training(build_config(config)).lora_path
    return base, images, files


def _modules(path: Path) -> dict[str, int]:
    """kohya module name -> rank, for a plain LoRA file."""
    tensors = load_file(str(path))
    return {k.removesuffix(DOWN): int(v.shape[0]) for k, v in tensors.items() if k.endswith(DOWN)}


def _deltas(path: Path, weight: float = 1.0) -> dict[str, torch.Tensor]:
    """kohya module name -> weight * up @ down * alpha / rank, in the layer's weight shape (float64)."""
    tensors = load_file(str(path))
    out = {}
    for name in _modules(path):
        down, up = tensors[name + DOWN].double(), tensors[name + ".lora_up.weight"].double()
        alpha = float(tensors[name + ".alpha"]) if name + ".alpha" in tensors else down.shape[0]
        full = up.flatten(1) @ down.flatten(1) * (weight * alpha / down.shape[0])
        out[name] = full.reshape(up.shape[0], *down.shape[1:])
    return out


def _check_sdxl_layout(path: Path, source: Path) -> dict[str, int]:
    """SDXL metadata, SGM names, te2 (and te1) attention sets whole, the source's modules; -> name: rank."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert {k: meta.get(k) for k in XL_FACTS} == XL_FACTS
    ranks = _modules(path)
    assert ranks.keys() == _modules(source).keys()
    unet = {n for n in ranks if n.startswith("lora_unet_")}
    assert all(re.match(r"lora_unet_(input_blocks|middle_block|output_blocks)_\d", n) for n in unet)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k" in unet
    assert "lora_unet_output_blocks_2_2_conv" in unet  # the upsampler's 3x3 conv, in its SGM name
    for prefix in ("lora_te1_", "lora_te2_"):
        layers = {re.search(r"layers_(\d+)_", n).group(1) for n in ranks if n.startswith(prefix)}
        assert layers, prefix
        for i in layers:  # A1111 folds te2's q/k/v into in_proj and applies them only as a whole set
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                assert f"{prefix}text_model_encoder_layers_{i}_self_attn_{proj}" in ranks, (prefix, i, proj)
    return ranks


def _check_diffusers_applies(folder: Path, path: Path, want: dict[str, torch.Tensor]) -> None:
    """diffusers' SDXL loader reads every module of `path`, and after fuse_lora each layer of the UNet and
    both encoders is the base + want[its kohya name] (layers the file does not name: unchanged)."""
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    state, _alphas = pipe.lora_state_dict(str(path))
    read = {k.rsplit(".lora", 1)[0] for k in state if "lora_A" in k or ".down." in k}
    assert len(read) == len(want)
    base = {c: {k: v.clone() for k, v in getattr(pipe, c).state_dict().items()} for c in COMPONENTS}
    pipe.load_lora_weights(str(path))
    pipe.fuse_lora(lora_scale=1.0, components=list(COMPONENTS))
    seen, wrong = set(), {}
    for component, short in COMPONENTS.items():
        model = getattr(pipe, component)
        fused = {k.replace(".base_layer", ""): v for k, v in model.state_dict().items() if "lora_" not in k}
        for key, before in base[component].items():
            if not key.endswith(".weight") or before.dim() < 2:
                continue
            module = key.removesuffix(".weight")
            try:
                name = kohya_name(short, module, "sgm")
            except ValueError:  # UNet layers with no SGM name (no LoRA target)
                name = None
            change = want.get(name)
            expected = before.double() + (change.reshape(before.shape) if change is not None else 0)
            seen.update([name] if change is not None else [])
            error = float((fused[key].double() - expected).abs().max())
            if error > 1e-5:
                wrong[name or key] = error
    assert seen == want.keys()  # every module of the file is a layer of the model
    assert not wrong, sorted(wrong.items(), key=lambda x: -x[1])[:5]


def test_resize_keeps_an_sdxl_lora_whole(xl, tmp_path, cli):
    base, _, files = xl
    out = tmp_path / "small.safetensors"
    done = cli("lora", "resize", str(files["a"]), "-o", str(out), "--rank", "2", "--conv-rank", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    before, ranks = _modules(files["a"]), _check_sdxl_layout(out, files["a"])
    conv = {
        n for n, t in load_file(str(out)).items() if n.endswith(DOWN) and t.dim() == 4 and t.shape[2] == 3
    }
    conv = {n.removesuffix(DOWN) for n in conv}
    assert conv and {ranks[n] for n in conv} == {1} and {before[n] for n in conv} == {2}
    linear = ranks.keys() - conv
    assert {before[n] for n in linear} == {4} and max(ranks[n] for n in linear) == 2
    # a module left at rank 1 carries no change: at 64 px the mid block sees one token, q/k get no gradient
    weak = _deltas(out)
    assert all(float(weak[n].abs().max()) == 0 for n in linear if ranks[n] < 2)
    _check_diffusers_applies(base["diffusers"], out, weak)


def test_resize_by_energy_gives_diffusers_the_right_scales(xl, tmp_path, cli):
    """--energy picks each module's rank; diffusers' kohya loader reads one alpha per model (its per-module
    alpha keys for attention and text-encoder layers match no layer), so the file must hold one alpha."""
    base, _, files = xl
    out = tmp_path / "energy.safetensors"
    done = cli("lora", "resize", str(files["a"]), "-o", str(out), "--energy", "0.9")
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = _check_sdxl_layout(out, files["a"])
    assert len(set(ranks.values())) > 1  # per-module ranks
    tensors = load_file(str(out))
    assert len({float(v) for k, v in tensors.items() if k.endswith(".alpha")}) == 1
    want = _deltas(files["a"])
    kept = _deltas(out)
    share = sum(float((kept[n] * want[n]).sum()) for n in want) / sum(
        float(want[n].pow(2).sum()) for n in want
    )
    assert 0.85 < share <= 1 + 1e-6  # the projection onto the kept directions: ~90% of the energy
    _check_diffusers_applies(base["diffusers"], out, kept)


def test_merge_loras_of_two_sdxl_loras(xl, tmp_path, cli):
    base, _, files = xl
    a, b = _deltas(files["a"], 0.7), _deltas(files["b"], -0.5)
    exact = tmp_path / "ab.safetensors"
    done = cli("lora", "merge-loras", f"{files['a']}:0.7", f"{files['b']}:-0.5", "-o", str(exact))
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = _check_sdxl_layout(exact, files["a"])
    assert set(ranks.values()) == {6}  # 4 + 2 linear, 2 + 4 conv: the ranks concatenated
    merged = _deltas(exact)
    for name, change in merged.items():
        torch.testing.assert_close(change, a[name] + b[name], atol=1e-6, rtol=1e-5)
    _check_diffusers_applies(base["diffusers"], exact, merged)
    svd = tmp_path / "svd.safetensors"
    done = cli(
        "lora", "merge-loras", f"{files['a']}:0.7", f"{files['b']}:-0.5", "-o", str(svd), "--rank", "3"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert max(_check_sdxl_layout(svd, files["a"]).values()) == 3
    _check_diffusers_applies(base["diffusers"], svd, _deltas(svd))
    # a LoRA with text encoders + a UNet-only one: rank 4 on the encoders, 6 on the UNet; diffusers takes
    # one alpha for the encoders' attention, so the file must not need per-module alphas there
    partial = tmp_path / "partial.safetensors"
    b_unet = _unet_only(files["b"], tmp_path / "b_unet.safetensors", only="attn1")
    done = cli("lora", "merge-loras", f"{files['a']}:0.7", f"{b_unet}:-0.5", "-o", str(partial))
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(_check_sdxl_layout(partial, files["a"]).values()) == {2, 4, 6}
    _check_diffusers_applies(base["diffusers"], partial, _deltas(partial))


def _one_sentence(done) -> str:
    """The CLI refused in one error line (exit 2, no traceback); that line, whitespace joined."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    return " ".join(done.stderr[done.stderr.index("Error:") :].split())


def test_merging_an_sdxl_and_an_sd1_lora_is_refused(xl, loras, tmp_path, cli):
    sd1 = loras.save(loras.parts(rank=2, every=4), tmp_path / "sd1.safetensors")
    xl_file = xl[2]["a"]
    out = tmp_path / "mixed.safetensors"
    for first, second, words in (
        (xl_file, sd1, f"'{sd1}' is an SD 1.x LoRA, but '{xl_file}' is SDXL"),
        (sd1, xl_file, f"'{xl_file}' is an SDXL LoRA, but '{sd1}' is SD 1.x"),
    ):
        message = _one_sentence(cli("lora", "merge-loras", str(first), str(second), "-o", str(out)))
        assert words in message, message
        assert not out.exists()


def _unet_only(source: Path, out: Path, only: str = "") -> Path:
    """The file without its text-encoder modules (header kept): family told by UNet names alone; `only`:
    just the modules whose names hold it."""
    with safe_open(str(source), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith("lora_unet_") and only in k}
        save_file(tensors, str(out), f.metadata())
    return out


@pytest.mark.parametrize("encoders", [True, False], ids=["with-text-encoders", "unet-only"])
def test_init_lora_of_another_family_is_refused_before_training(
    xl, loras, tiny_model, tmp_path, cli, encoders
):
    """SDXL training from an SD1 LoRA and SD1 training from an SDXL one: one sentence, no LoRA written.
    The text encoders tell the families apart first; without them, the UNet's module names."""
    base, images, files = xl
    sd1_lora = loras.save(loras.parts(rank=2, every=4, te=encoders), tmp_path / "sd1.safetensors")
    xl_lora = files["a"] if encoders else _unet_only(files["a"], tmp_path / "xl_unet.safetensors")
    for model, init, words in (
        (base["single_file"], sd1_lora, f"'{sd1_lora}' is a LoRA for SD 1.x, but the base model is SDXL"),
        (tiny_model["single_file"], xl_lora, f"'{xl_lora}' is a LoRA for SDXL, but the base model is SD 1.x"),
    ):
        out = tmp_path / f"out-{init.stem}"
        config = {
            "base_model": str(model),
            "train_data_dir": str(images),
            "output_dir": str(out),
            "resolution": 64,
            "max_train_steps": 2,
            "device": "cpu",
            "doctor": "off",
            "init_lora": str(init),
        }
        path = tmp_path / f"{init.stem}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        message = _one_sentence(cli("train", "-c", str(path)))
        assert words in message, message
        assert not list(out.rglob("*.safetensors")) and not (out / FILE_NAME).exists()


def test_init_lora_of_another_family_leaves_no_output_folder(xl, loras, tmp_path, cli):
    """As a rank conflict (tests/train/test_run_faults.py): nothing written before the refusal."""
    base, images, _ = xl
    sd1_lora = loras.save(loras.parts(rank=2, every=4), tmp_path / "sd1.safetensors")
    out = tmp_path / "out"
    config = {
        "base_model": str(base["single_file"]),
        "train_data_dir": str(images),
        "output_dir": str(out),
        "resolution": 64,
        "device": "cpu",
        "doctor": "off",
        "init_lora": str(sd1_lora),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert "is a LoRA for SD 1.x" in _one_sentence(cli("train", "-c", str(path)))
    assert not out.exists()
