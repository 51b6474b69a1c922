"""The catalogue job files the project ships (examples/catalogue/job.yaml, configs/batch_catalogue.yaml) are
read by the real job loader, so a renamed or removed key fails here instead of in a user's first run; and the
example runs end to end through `lora-scripts batch` on the tiny model."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from lora_scripts.batch.config import JobConfig, load_job

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "catalogue" / "job.yaml"
CONFIG = ROOT / "configs" / "batch_catalogue.yaml"
# what the run changes in a copy of the example: only the size of the work, and where things are
SMALL = {"width": 32, "height": 32, "steps": 2}


def _columns(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("path", [EXAMPLE, CONFIG], ids=["example", "config"])
def test_shipped_job_files_load_with_the_job_loader(path):
    job = load_job(path)  # unknown keys, bad samplers, sizes not a multiple of 8: one ConfigError
    assert isinstance(job, JobConfig)
    assert job.items.is_absolute() and Path(job.output_dir).is_absolute()  # read from the file's folder


def test_the_examples_templates_use_columns_its_items_have():
    job = load_job(EXAMPLE)
    columns = set(_columns(job.items))
    templates = [job.prompt, job.negative_prompt, *(o.prompt or "" for o in job.overrides.values())]
    used = {name for text in templates for name in re.findall(r"{(\w+)}", text)}
    assert used and used <= columns, used - columns
    assert {job.id_column, job.by} <= columns
    assert set(job.overrides) <= {row[job.by] for row in _rows(job.items)}  # no override for nobody


@pytest.mark.slow
def test_the_example_job_runs_through_the_cli(cli, tiny_model, tmp_path):
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(SMALL) <= set(raw)  # the copy only overrides keys the example has
    raw.update(
        SMALL,
        base_model=str(tiny_model["single_file"]),
        items=str(EXAMPLE.parent / raw["items"]),
        output_dir=str(tmp_path / "out"),
        device="cpu",
    )
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(raw), encoding="utf-8")

    result = cli("batch", job)
    assert result.returncode == 0, result.stderr

    out = tmp_path / "out"
    items = _rows(EXAMPLE.parent / "items.csv")
    assert len(items) == 20
    with open(out / "index.csv", encoding="utf-8") as handle:
        index = list(csv.DictReader(handle))
    wanted = [(item["id"], str(n)) for item in items for n in range(raw["images_per_item"])]
    assert sorted((r["id"], r["n"]) for r in index) == sorted(wanted)  # one row per (item, image), once
    assert all((out / r["file"]).is_file() for r in index)
    laptop = next(r for r in index if r["file"].startswith("images/laptop/"))
    assert laptop["prompt"].endswith("laptop on a grey background")  # the example's override applied
    sheet = (out / "index.html").read_text(encoding="utf-8")
    assert sheet.count("<figure") == len(wanted)
    assert (out / "failed.csv").read_text(encoding="utf-8").strip() == "id,n,reason"
