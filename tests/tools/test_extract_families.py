"""`lora extract` between models of two families (an SD 1.x base, an SDXL tuned model) is refused with one
sentence naming both, from the files alone: before either model is loaded."""

from __future__ import annotations

import pytest

from lora_scripts.models.tiny_sdxl import save_tiny_sdxl


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("xl"))


@pytest.mark.parametrize("layout", ["single_file", "diffusers"])
@pytest.mark.parametrize("sdxl_is", ["tuned", "base"])
def test_extract_across_families_is_refused_before_loading(tiny_model, sdxl, layout, sdxl_is, tmp_path, cli):
    xl, sd1 = str(sdxl[layout]), str(tiny_model[layout])
    tuned, base = (xl, sd1) if sdxl_is == "tuned" else (sd1, xl)
    out = tmp_path / "x.safetensors"
    done = cli("lora", "extract", tuned, base, "-o", str(out), "--rank", "4")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "Unexpected error" not in done.stderr
    message = " ".join(done.stderr.split())  # rich may wrap the one line at the console's width
    families = ("SDXL", "SD 1.x") if sdxl_is == "tuned" else ("SD 1.x", "SDXL")
    assert f"'{tuned}' is {families[0]} but the base '{base}' is {families[1]}" in message
    assert message.count("Error:") == 1
    assert "Loading base model" not in done.stderr  # refused from the files, neither model was loaded
    assert not out.exists()
