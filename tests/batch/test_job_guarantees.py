"""What docs/catalogue.md promises of a job, on the real CLI and real files: another model of the same size,
a changed row, prompt or sampler are refused; a black or NaN image goes to failed.csv; without `by` the
images are grouped by the id's first two letters; progress events carry the rate and the ETA."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SMALL = {"images_per_item": 1, "width": 64, "height": 64, "steps": 2}  # the cheapest real job


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def edit_weights(path: Path, prefix: str, change) -> None:
    """Re-save a safetensors file with every tensor under `prefix` changed: same names, shapes and dtypes,
    so the same byte size."""
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    for key, value in tensors.items():
        if key.startswith(prefix):
            tensors[key] = change(value)
    save_file(tensors, str(path), metadata=metadata)


def fine_tune(t: torch.Tensor) -> torch.Tensor:
    """What training does to a UNet weight: every value moved a little."""
    return t + 1e-3 * torch.randn(t.shape, generator=torch.Generator().manual_seed(t.numel()))


def test_a_base_model_with_other_weights_of_the_same_size_is_refused(
    cli, make_job, tmp_path, tiny_model, rows, monkeypatch
):
    model = tmp_path / "model.safetensors"
    shutil.copy(tiny_model["single_file"], model)
    job = make_job(rows=rows[:1], base_model=str(model), **SMALL)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    (first,) = read_csv(out / "index.csv")
    size = model.stat().st_size
    edit_weights(model, "model.diffusion_model.", fine_tune)  # a fine-tune: same architecture, same size
    assert model.stat().st_size == size

    monkeypatch.setenv("LORA_SCRIPTS_LANG", "zh")
    refused = cli("batch", job)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"The base model '{model}' is not the one" in refused.stderr and "--new" in refused.stderr
    assert "怎么办：底模换了" in refused.stderr
    assert read_csv(out / "index.csv") == [first]  # nothing made with the other model

    assert cli("batch", job, "--new").returncode == 0
    (again,) = read_csv(out / "index.csv")
    assert again["sha256"] != first["sha256"]  # made by the fine-tune
    (aside,) = out.glob("replaced-*")
    assert read_csv(aside / "index.csv") == [first]


def test_a_diffusers_folder_with_other_weights_is_refused(cli, make_job, tmp_path, tiny_model, rows):
    model = tmp_path / "model"
    shutil.copytree(tiny_model["diffusers"], model)
    job = make_job(rows=rows[:1], base_model=str(model), **SMALL)
    assert cli("batch", job).returncode == 0
    edit_weights(model / "unet" / "diffusion_pytorch_model.safetensors", "", fine_tune)
    refused = cli("batch", job)
    assert refused.returncode == 2 and f"The base model '{model}' is not the one" in refused.stderr


def test_a_job_started_before_the_model_was_sampled_goes_on_and_is_checked_from_then(
    cli, make_job, tmp_path, tiny_model, rows
):
    """A job.json of the previous fingerprint (path and size only) is not refused: the job resumes without
    making anything again, and the model's sample is added, so another model is refused from then on."""
    model = tmp_path / "model.safetensors"
    shutil.copy(tiny_model["single_file"], model)
    job = make_job(rows=rows[:2], base_model=str(model), **SMALL)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    facts = json.loads((out / "job.json").read_text(encoding="utf-8"))
    sample = facts.pop("base_model_sampled_sha256")
    (out / "job.json").write_text(json.dumps(facts), encoding="utf-8")  # as the previous version wrote it
    made = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    make_job(rows=rows, base_model=str(model), **SMALL)  # one more row: the old job goes on
    resumed = cli("batch", job)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["id"] for r in read_csv(out / "index.csv")] == [r["id"] for r in rows]
    assert all(p.stat().st_mtime_ns == t for p, t in made.items())
    assert json.loads((out / "job.json").read_text(encoding="utf-8"))["base_model_sampled_sha256"] == sample

    edit_weights(model, "model.diffusion_model.", fine_tune)
    refused = cli("batch", job)
    assert refused.returncode == 2 and "is not the one" in refused.stderr


def test_a_changed_row_is_refused(cli, make_job, tmp_path, rows, monkeypatch):
    job = make_job(rows=rows[:2], **SMALL)
    assert cli("batch", job).returncode == 0
    before = read_csv(tmp_path / "out" / "index.csv")
    rows[1]["colour"] = "gold"  # same id, another value
    make_job(rows=rows[:2], **SMALL)
    monkeypatch.setenv("LORA_SCRIPTS_LANG", "zh")
    refused = cli("batch", job)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "The item 'SM-S24' changed since its images were made" in refused.stderr
    assert "gold" in refused.stderr and "怎么办：这一行的内容变了" in refused.stderr
    assert read_csv(tmp_path / "out" / "index.csv") == before


def test_a_row_changed_in_its_negative_prompt_folder_loras_or_an_emptied_cell_is_refused(
    cli, make_job, tmp_path, rows
):
    """index.csv's prompt is not all that makes a finished image: a column used only in the negative prompt,
    a category whose override differs only in its negative prompt or LoRAs, or that only moves the image to
    another folder, and a cell emptied since, are each refused; a new row is still made, and an output
    folder from before negative_prompts.json existed resumes and is checked from then on."""
    for row in rows:
        row["avoid"] = "glare"
    overrides = {
        "laptop": {"negative_prompt": "blurry, {avoid}, keyboard"},
        "tablet": {"loras": {"metal": 0.5}},
    }
    keys = {**SMALL, "negative_prompt": "blurry, {avoid}", "by": "category", "overrides": overrides}
    job = make_job(rows=rows[:2], **keys)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    before = read_csv(out / "index.csv")
    made = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    changes = [
        ({"avoid": "dust"}, "(negative prompt 'blurry, glare', now 'blurry, dust')"),
        ({"category": "laptop"}, "(negative prompt 'blurry, glare', now 'blurry, glare, keyboard')"),
        ({"category": "watch"}, "(file 'images/phone/SM-S24_0.png', now 'images/watch/SM-S24_0.png')"),
        ({"category": "tablet"}, "<lora:metal:0.5>"),
        ({"colour": "NaN"}, "now cannot be made (the column 'colour' is empty for item 'SM-S24')"),
    ]
    for change, named in changes:
        make_job(rows=[rows[0], {**rows[1], **change}], **keys)
        refused = cli("batch", job)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, change
        assert "The item 'SM-S24' changed since its images were made" in refused.stderr, change
        assert named in refused.stderr, refused.stderr
    assert read_csv(out / "index.csv") == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == made

    (out / "negative_prompts.json").unlink()  # as a job started before the file existed left its folder
    make_job(rows=rows, **keys)  # one more row: made
    assert cli("batch", job).returncode == 0
    assert [r["id"] for r in read_csv(out / "index.csv")] == [r["id"] for r in rows]
    assert json.loads((out / "negative_prompts.json").read_text(encoding="utf-8")) == {
        "AP-IP15": "blurry, glare",
        "SM-S24": "blurry, glare",
        "LN-X1C": "blurry, glare, keyboard",
    }
    make_job(rows=[*rows[:2], {**rows[2], "avoid": "dust"}], **keys)
    refused = cli("batch", job)
    assert refused.returncode == 2 and "The item 'LN-X1C' changed" in refused.stderr


def test_a_changed_prompt_negative_prompt_or_sampler_is_refused(cli, make_job, tmp_path, rows):
    job = make_job(rows=rows[:1], **SMALL)
    assert cli("batch", job).returncode == 0
    before = read_csv(tmp_path / "out" / "index.csv")
    changes = [
        ({"prompt": "<lora:tech_phone:0.8> {brand} {model}, {colour}, studio light"}, "(prompt)"),
        ({"negative_prompt": "blurry, dark"}, "(negative_prompt)"),
        ({"sampler": "DDIM"}, "(sampler)"),
    ]
    for keys, named in changes:
        make_job(rows=rows[:1], **SMALL, **keys)
        refused = cli("batch", job)
        assert refused.returncode == 2 and "The job changed since" in refused.stderr, keys
        assert named in refused.stderr, refused.stderr
    assert read_csv(tmp_path / "out" / "index.csv") == before


def test_nan_and_black_images_go_to_failed_csv_not_the_index(cli, make_job, tmp_path, tiny_model, rows):
    """Real causes: a LoRA weight so large that the UNet overflows (NaN), and a VAE whose last layer puts
    every pixel below black."""
    nan = {"laptop": {"loras": {"metal": 1e30}}}
    job = make_job(rows=rows, by="category", overrides=nan, **SMALL)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    assert [r["id"] for r in read_csv(out / "index.csv")] == ["AP-IP15", "SM-S24"]
    assert read_csv(out / "failed.csv") == [
        {"id": "LN-X1C", "n": "0", "reason": "the image came out black or NaN"}
    ]
    assert not (out / "images" / "laptop").exists()

    black = tmp_path / "black.safetensors"
    shutil.copy(tiny_model["single_file"], black)
    edit_weights(black, "first_stage_model.decoder.conv_out.weight", torch.zeros_like)
    edit_weights(black, "first_stage_model.decoder.conv_out.bias", lambda t: torch.full_like(t, -5.0))
    job = make_job(rows=rows[:2], base_model=str(black), output_dir="black", name="black.yaml", **SMALL)
    assert cli("batch", job).returncode == 0
    assert read_csv(tmp_path / "black" / "index.csv") == []
    reasons = {(r["id"], r["reason"]) for r in read_csv(tmp_path / "black" / "failed.csv")}
    assert reasons == {(i, "the image came out black or NaN") for i in ("AP-IP15", "SM-S24")}
    assert not list((tmp_path / "black").rglob("*.png"))


def test_without_by_images_are_grouped_by_the_ids_first_two_letters(cli, make_job, tmp_path, rows):
    job = make_job(rows=rows, **SMALL)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    files = [r["file"] for r in read_csv(out / "index.csv")]
    assert files == ["images/AP/AP-IP15_0.png", "images/SM/SM-S24_0.png", "images/LN/LN-X1C_0.png"]
    assert all((out / f).is_file() for f in files)


def test_progress_events_carry_the_rate_and_the_eta(cli, make_job, tmp_path, rows):
    job = make_job(rows=rows, batch_size=1, **SMALL)  # three batches
    assert cli("batch", job).returncode == 0
    events = [json.loads(line) for line in (tmp_path / "out" / "progress.jsonl").read_text().splitlines()]
    batches = [e for e in events if e["event"] == "batch"]
    assert [e["done"] for e in batches] == [1, 2, 3] and all(e["total"] == 3 for e in batches)
    assert all(e["images_per_min"] > 0 for e in batches)
    assert all(math.isfinite(e["eta_s"]) and e["eta_s"] > 0 for e in batches[:-1])  # while running
    assert batches[-1]["eta_s"] == 0
    assert events[-1]["event"] == "end" and events[-1]["state"] == "done" and events[-1]["done"] == 3
