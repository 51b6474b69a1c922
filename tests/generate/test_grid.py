"""Batch plans (prompts x seeds x weights) and X/Y grids: the right cells, in order, with labels."""

import pytest
from PIL import Image

from lora_scripts.errors import ConfigError
from lora_scripts.generate.batch import plan_batch
from lora_scripts.generate.images import parameters_text
from lora_scripts.generate.prompt_files import read_prompt_file
from lora_scripts.generate.prompts import PromptSpec
from lora_scripts.save.grid import make_grid

WHITE = (255, 255, 255)


def test_plan_rows_are_prompt_x_seed_and_columns_are_weights():
    prompts = [PromptSpec.from_text("<lora:metal:0.3> phone"), PromptSpec.from_text("laptop")]
    batch = plan_batch(prompts, seeds=[1, 2], weights=[0, 0.5, 1], lora="tech_phone")
    assert len(batch.specs) == 12 and len(batch.row_labels) == 4 and len(batch.col_labels) == 3
    assert batch.col_labels == ["tech_phone: 0", "tech_phone: 0.5", "tech_phone: 1"]
    assert batch.row_labels[1] == "phone\nseed 2"
    first = batch.specs[0]
    assert first.text == "<lora:metal:0.3> <lora:tech_phone:0> phone" and first.seed == 1
    assert [s.seed for s in batch.specs[3:6]] == [2, 2, 2]
    assert batch.specs[11].text == "<lora:tech_phone:1> laptop"


def test_plan_without_weights_puts_seeds_in_columns():
    batch = plan_batch([PromptSpec.from_text("phone")], seeds=[5, 6, 7])
    assert [s.seed for s in batch.specs] == [5, 6, 7] and batch.col_labels == ["seed 5", "seed 6", "seed 7"]


def test_grid_has_one_cell_per_image_and_labels():
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200), (200, 0, 200)]
    images = [Image.new("RGB", (64, 64), c) for c in colours]
    grid = make_grid(images, ["futuristic smartphone", "laptop"], ["w 0", "w 0.5", "w 1"])
    cell_w = (grid.width - _left(grid)) // 3
    top = grid.height - 2 * 64
    assert top > 0 and cell_w >= 64
    for i, colour in enumerate(colours):
        r, c = divmod(i, 3)
        assert grid.getpixel((_left(grid) + c * cell_w + cell_w // 2, top + r * 64 + 32)) == colour
    label_area = grid.crop((0, top, _left(grid), grid.height))  # row labels are drawn
    assert any(p != WHITE for p in label_area.getdata())
    assert any(p != WHITE for p in grid.crop((_left(grid), 0, grid.width, top)).getdata())
    with pytest.raises(ValueError):
        make_grid(images[:5], ["a", "b"], ["1", "2", "3"])


def _left(grid):
    """First column (from the left) where an image cell starts: the first non-white pixel in the last row."""
    return next(x for x in range(grid.width) if grid.getpixel((x, grid.height - 1)) != WHITE)


def test_parameters_text_is_webui_format():
    spec = PromptSpec.from_text("<lora:tech_phone:0.7> phone", negative_prompt="blurry", seed=42, steps=20)
    text = parameters_text(spec, "v1-5-pruned", {"tech_phone": "0123456789ab"})
    assert text == (
        "<lora:tech_phone:0.7> phone\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: v1-5-pruned, "
        'Lora hashes: "tech_phone: 0123456789ab"'
    )


@pytest.mark.parametrize(
    "name, content",
    [
        ("p.txt", "# comment\n<lora:a:0.5> phone\n\nlaptop\n"),
        ("p.csv", 'prompt,negative_prompt,steps\n"<lora:a:0.5> phone",blurry,\nlaptop,,5\n'),
        ("p.yaml", "prompts:\n  - '<lora:a:0.5> phone'\n  - {prompt: laptop, steps: 5}\n"),
    ],
)
def test_prompt_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    specs = read_prompt_file(path, {"steps": 3, "sampler": "euler"})
    assert [s.prompt for s in specs] == ["phone", "laptop"]
    assert specs[0].loras[0].weight == 0.5 and specs[0].steps == 3 and specs[0].sampler == "Euler"
    if name != "p.txt":
        assert specs[1].steps == 5


def test_prompt_file_unknown_column(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,negativ_prompt\nphone,blurry\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="Unknown column 'negativ_prompt'.*Did you mean 'negative_prompt'"):
        read_prompt_file(path, {})


def test_plan_sweeps_every_tag_when_no_lora_is_named_and_refuses_a_prompt_without_one():
    batch = plan_batch([PromptSpec.from_text("<lora:metal:0.3> phone")], seeds=[1], weights=[0, 1])
    assert [s.text for s in batch.specs] == ["<lora:metal:0> phone", "<lora:metal:1> phone"]
    with pytest.raises(ConfigError, match=r"the prompt 'phone' has no <lora:name:w> tag and no --lora"):
        plan_batch([PromptSpec.from_text("phone")], seeds=[1], weights=[0, 1])
    assert len(plan_batch([PromptSpec.from_text("phone")], seeds=[1], weights=[0, 1], lora="x").specs) == 2
