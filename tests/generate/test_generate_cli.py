"""`lora-scripts generate` as a user runs it: a batch with a grid, and one sentence + exit 2 per bad input."""

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from lora_scripts.cli import app

FAST = ["-W", "64", "-H", "64", "--steps", "2", "--device", "cpu"]


def test_batch_writes_images_with_parameters_and_a_grid(cli, tiny_model, lora_dir, tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text(
        'prompt,negative_prompt\n"<lora:metal:-0.4> futuristic smartphone, glowing edges",blurry\nlaptop,\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["-m", str(tiny_model["single_file"]), "-l", str(lora_dir), "-p", str(prompts), "-o", str(out)]
    result = cli("generate", *args, "--lora", "tech_phone", "--weights", "0,1.5", "--seeds", "3", *FAST)
    assert result.returncode == 0, result.stderr
    images = sorted(out.glob("0*.png"))
    assert [p.name for p in images] == ["00000-3.png", "00001-3.png", "00002-3.png", "00003-3.png"]
    text = Image.open(images[1]).text["parameters"]
    assert text.startswith("<lora:metal:-0.4> <lora:tech_phone:1.5> futuristic smartphone, glowing edges\n")
    assert "Negative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 3, Size: 64x64" in text
    assert 'Model: tiny-sd15, Lora hashes: "metal: ' in text and ", tech_phone: " in text
    assert "tech_phone" not in Image.open(images[0]).text["parameters"].split("Lora hashes")[-1]  # weight 0
    grid = Image.open(out / "grid-00000.png")
    assert grid.width > 2 * 64 and grid.height > 2 * 64
    assert "Generating" in result.stderr  # one progress bar over the batch
    assert not list(out.glob(".*"))  # no temp files left


def test_seed_style_generate_py_rejects_a_malformed_tag(tmp_path, tiny_model):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    args = [sys.executable, str(root / "generate.py"), "-m", str(tiny_model["single_file"]), "-o", str(out)]
    result = subprocess.run([*args, "<lora:fire:abc> phone"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "weight 'abc', which is not a number" in result.stderr and "Traceback" not in result.stderr
    assert "'<lora:fire:abc>'" in result.stderr  # the tag as written: `:fire:` is not turned into an emoji
    assert not out.exists()


def _bad(case: str, lora_dir: Path, tmp_path: Path, tiny_model) -> tuple[list[str], str]:
    if case == "unknown_name":
        return ["<lora:tech_phon:0.7> phone"], "No LoRA named 'tech_phon'"
    if case == "malformed_tag":
        return ["<lora:tech_phone:abc> phone"], "not a number"
    if case == "other_family":
        (lora_dir / "xl.safetensors").write_bytes((lora_dir / "tech_phone.safetensors").read_bytes())
        _rename_te_keys(lora_dir / "xl.safetensors")
        return ["<lora:xl:0.7> phone"], "is a LoRA for SDXL, but the base model is SD 1.x"
    if case == "not_a_lora":
        (lora_dir / "base.safetensors").write_bytes(Path(tiny_model["single_file"]).read_bytes())
        return ["<lora:base> phone"], "is not a LoRA file"
    if case == "unwritable_out":
        (tmp_path / "out").write_text("a file where the folder should be")
        return ["<lora:tech_phone> phone"], "cannot be created"
    raise AssertionError(case)


def _rename_te_keys(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    save_file({k.replace("lora_te_", "lora_te1_"): v for k, v in tensors.items()}, str(path))


BAD = ["unknown_name", "malformed_tag", "other_family", "not_a_lora", "unwritable_out"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_sentence_and_exit_2(case, lora_dir, tmp_path, tiny_model):
    prompt, words = _bad(case, lora_dir, tmp_path, tiny_model)
    out = tmp_path / "out"
    args = ["generate", *prompt, "-m", str(tiny_model["single_file"]), "-l", str(lora_dir), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, *FAST])
    assert result.exit_code == 2, result.output
    assert words in result.output, result.output
    assert result.output.count("Error:") == 1 and "Traceback" not in result.output
    assert not out.is_dir() or not list(out.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("option", "value", "words", "example"),
    [
        ("--seeds", "1,x", "is not a comma-separated list of whole numbers", "--seeds 1,2,3"),
        ("--seeds", "1.5", "is not a comma-separated list of whole numbers", "--seeds 1,2,3"),
        ("--seeds", ",", "--seeds is empty", "--seeds 1,2,3"),
        ("--weights", "0,half", "is not a comma-separated list of numbers", "--weights 0,0.5,1"),
    ],
)
def test_a_bad_number_list_gets_an_example_that_works(
    cli, tiny_model, tmp_path, option, value, words, example
):
    """The example in the sentence is of the option's own kind: `--seeds 0,0.5,1` would itself be refused."""
    out = tmp_path / "out"
    args = ["<lora:tech_phone> phone", "-m", str(tiny_model["single_file"]), "-o", str(out)]
    result = cli("generate", *args, option, value, *FAST)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and f"Write it like {example}." in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    from lora_scripts.generate.commands import _numbers

    assert _numbers(example.split()[1], int if option == "--seeds" else float, option)  # it is accepted


@pytest.mark.parametrize("prompt", ["phone", "<lora:tech_phone:0.7> phone"])
def test_weights_without_a_lora_to_sweep_is_refused_before_the_model_loads(
    cli, tiny_model, lora_dir, tmp_path, monkeypatch, prompt
):
    """Without a tag or --lora, every column would be the same image: one sentence, nothing loaded."""
    import lora_scripts.models.registry as registry

    def no_load(*_args, **_kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(registry, "load_model", no_load)
    out = tmp_path / "out"
    args = [prompt, "laptop", "-m", str(tiny_model["single_file"]), "-l", str(lora_dir), "-o", str(out)]
    result = cli("generate", *args, "--weights", "0,1", *FAST)
    assert result.returncode == 2, result.stderr
    bare = "laptop" if "<lora:" in prompt else "phone"  # the first prompt without a tag
    assert (
        f"--weights compares a LoRA's weights, but the prompt '{bare}' has no <lora:name:w> tag and no "
        "--lora is given" in result.stderr
    )
    assert "--lora tech_phone" in result.stderr and "Traceback" not in result.stderr and not out.exists()


@pytest.mark.parametrize("option", ["-m", "--vae"])
def test_a_pickle_model_or_vae_gets_advice_generate_can_follow(cli, tiny_model, tmp_path, option):
    """generate has no allow_pickle: the sentence says to use the .safetensors version, not to set one."""
    pickle = tmp_path / ("base.ckpt" if option == "-m" else "vae.pt")
    pickle.write_bytes(b"never unpickled")
    given = {"-m": str(tiny_model["single_file"]), option: str(pickle)}
    out = tmp_path / "out"
    result = cli("generate", "phone", *[x for kv in given.items() for x in kv], "-o", str(out), *FAST)
    assert result.returncode == 2, result.stderr
    assert f"'{pickle}' is a pickle" in result.stderr and "which can run hidden code" in result.stderr
    assert "Use its .safetensors version" in result.stderr and "allow_pickle" not in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
