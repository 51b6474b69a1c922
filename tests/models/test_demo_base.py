"""The committed demo base (assets/demo-base/) draws what it is asked for, and both of its layouts load."""

from pathlib import Path

import pytest
import torch

from lora_scripts.config import ModelConfig
from lora_scripts.models.loader import load_components

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "demo-base"
SINGLE = ASSETS / "demo-base.safetensors"
FOLDER = ASSETS / "diffusers"
STEPS, CFG = 12, 7.5
pytestmark = pytest.mark.skipif(
    not SINGLE.is_file(), reason="assets/demo-base/ is not built yet: run scripts/build_demo_base.py"
)


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(FOLDER, local_files_only=True, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _draw(pipe, prompt: str, seed: int = 0) -> torch.Tensor:
    """The image as a (3, 64, 64) tensor of 0..1 values."""
    out = pipe(
        prompt,
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="pt",
    )
    return out.images[0]


def _centre_and_border(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean RGB of the middle 16x16 pixels and of the outer 6-pixel ring."""
    centre = image[:, 24:40, 24:40].mean((1, 2))
    ring = torch.ones(64, 64, dtype=torch.bool)
    ring[6:58, 6:58] = False
    return centre, image[:, ring].mean(1)


def _plain(sd: dict) -> dict:
    return {k.removeprefix("text_model."): v for k, v in sd.items() if not k.endswith("position_ids")}


def test_single_file_and_diffusers_folder_hold_the_same_weights():
    single = load_components(ModelConfig(base_model=str(SINGLE)))
    folder = load_components(ModelConfig(base_model=str(FOLDER)))
    for part in ("unet", "vae", "text_encoder"):
        got, want = _plain(getattr(single, part).state_dict()), _plain(getattr(folder, part).state_dict())
        assert got.keys() == want.keys(), part
        differ = [k for k in want if not torch.equal(got[k].float(), want[k].float())]
        assert not differ, f"{part}: {len(differ)} weights differ, first {differ[:3]}"
    assert (single.family, single.prediction_type) == ("sd1", "epsilon")


def test_assets_stay_small():
    files = [p for p in ASSETS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 25 * 2**20


def test_a_red_phone_on_white(pipe):
    centre, border = _centre_and_border(_draw(pipe, "a red phone on a white background"))
    assert border.min() > 0.8, f"border {border.tolist()} is not near white"
    assert centre[0] > centre[1] + 0.25 and centre[0] > centre[2] + 0.25, f"centre {centre.tolist()} not red"


def test_a_blue_laptop_on_dark(pipe):
    centre, border = _centre_and_border(_draw(pipe, "a blue laptop on a dark background"))
    assert border.max() < 0.25, f"border {border.tolist()} is not dark"
    assert centre[2] > centre[0] + 0.2 and centre[2] > centre[1] + 0.1, f"centre {centre.tolist()} not blue"


def test_same_seed_same_image(pipe):
    prompt = "a green tablet on a grey background"
    first, again, other = _draw(pipe, prompt, 3), _draw(pipe, prompt, 3), _draw(pipe, prompt, 4)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
