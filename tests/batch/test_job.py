"""`lora-scripts batch`: the files a job leaves, validation in one sentence, and a changed job refused."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import yaml
from PIL import Image


def read_index(out: Path) -> list[dict]:
    with open(out / "index.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_seed(job_seed: int, item_id: str, n: int) -> int:
    digest = hashlib.sha256(f"{job_seed}\0{item_id}\0{n}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _tensor_bytes(path: Path) -> bytes:
    """A safetensors file after its header: what WebUI's `Lora hashes` hash."""
    data = path.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little") :]


def test_job_writes_images_index_and_contact_sheet(cli, make_job, tmp_path, rows, batch_loras):
    job = make_job(by="category", overrides={"laptop": {"prompt": "{brand} {model} laptop, {colour}"}})
    result = cli("batch", job)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    items, rows = rows, read_index(out)
    assert [(r["id"], r["n"]) for r in rows] == [(row["id"], str(n)) for row in items for n in (0, 1)]
    for row in rows:
        item = next(r for r in items if r["id"] == row["id"])
        assert row["file"] == f"images/{item['category']}/{row['id']}_{row['n']}.png"
        data = (out / row["file"]).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert int(row["seed"]) == expected_seed(7, row["id"], int(row["n"]))
        text = Image.open(out / row["file"]).info["parameters"]
        assert f"Seed: {row['seed']}" in text and "Negative prompt: blurry" in text and "Size: 32x32" in text
    phone = next(r for r in rows if r["id"] == "SM-S24")
    lora_hash = hashlib.sha256(_tensor_bytes(batch_loras / "tech_phone.safetensors")).hexdigest()[:12]
    assert f'Lora hashes: "tech_phone: {lora_hash}"' in Image.open(out / phone["file"]).info["parameters"]
    assert phone["prompt"] == "<lora:tech_phone:0.8> Samsung Galaxy S24, blue, neon style"
    laptop = next(r for r in rows if r["id"] == "LN-X1C")
    assert laptop["prompt"] == "Lenovo X1 Carbon laptop, black" and laptop["loras"] == ""
    images = [Image.open(out / r["file"]) for r in rows]
    assert len({im.tobytes() for im in images}) == len(images)  # every image its own seed
    sheet = (out / "index.html").read_text(encoding="utf-8")
    assert sheet.count("<figure") == 6 and '<option value="laptop">' in sheet
    for row in rows:  # each a small thumbnail linking to its full image
        thumb = Path(row["file"]).with_suffix(".jpg").as_posix().replace("images/", "thumbs/", 1)
        assert f'<a href="{row["file"]}"><img loading="lazy" src="{thumb}"' in sheet
        with Image.open(out / thumb) as small:
            assert small.format == "JPEG" and small.size == Image.open(out / row["file"]).size  # 32 px: as is
    assert (out / "failed.csv").read_text().strip() == "id,n,reason"
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "start" and events[-1] == {**events[-1], "event": "end", "state": "done"}
    assert [e["done"] for e in events if e["event"] == "batch"][-1] == 6


def test_rows_that_cannot_be_made_go_to_failed_csv(cli, make_job, tmp_path):
    lines = [
        {"id": "A1", "brand": "Apple", "model": "iPhone", "colour": "red"},
        {"id": "B2", "brand": "Oppo", "model": "Find X"},  # no colour
        {"id": "C3", "brand": "Vivo", "model": "<lora:metal:1> X", "colour": "red"},
        {"id": "D4", "brand": "Honor", "model": None, "colour": "red"},  # null
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    job = make_job(items="items.jsonl", images_per_item=1)
    assert cli("batch", job).returncode == 0
    assert [r["id"] for r in read_index(tmp_path / "out")] == ["A1"]
    assert read_failed(tmp_path / "out") == {
        "B2": "the column 'colour' is missing for item 'B2'",
        "C3": "the column 'model' holds a '<' (LoRA tags belong in the job file)",
        "D4": "the column 'model' is empty for item 'D4'",
    }


def test_empty_nan_and_missing_cells_go_to_failed_csv_and_are_made_once_filled(cli, make_job, tmp_path):
    """A cell the prompt, the negative prompt or `by` uses that is empty, blank, NaN/None/null or cut off (a
    short row) is not made with a hole in its prompt: failed.csv names the item and the column, the rest is
    made, and the row filled in later is made on the next run."""
    header = "id,brand,model,colour,category,avoid"
    lines = [
        "A1,Apple,iPhone,,phone,glare",
        "B2,Oppo,Find X,NaN,phone,glare",
        "C3,Vivo",
        "D4,Honor,Magic, null ,phone,glare",
        "E5,Huawei,P60,white,,glare",
        "F6,Nokia,G42,blue,phone,None",
        "G7,Google,Pixel,black,phone,glare",
        "H8,Sony,Xperia,   ,phone,glare",
    ]
    job = make_job(negative_prompt="blurry, {avoid}", by="category", images_per_item=1)
    items = tmp_path / "items.csv"  # in place of the rows make_job wrote
    items.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    result = cli("batch", job)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    (made,) = read_index(out)
    assert made["id"] == "G7" and made["prompt"] == "<lora:tech_phone:0.8> Google Pixel, black, neon style"
    expected = {
        "A1": "the column 'colour' is empty for item 'A1'",
        "B2": "the column 'colour' is empty for item 'B2'",
        "C3": "the column 'category' is missing for item 'C3'",
        "D4": "the column 'colour' is empty for item 'D4'",
        "E5": "the column 'category' is empty for item 'E5'",
        "F6": "the column 'avoid' is empty for item 'F6'",
        "H8": "the column 'colour' is empty for item 'H8'",
    }
    assert read_failed(out) == expected
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.png")] == ["images/phone/G7_0.png"]

    lines[1] = "B2,Oppo,Find X,gold,phone,glare"  # filled in: made on the next run, no longer failed
    items.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    assert cli("batch", job).returncode == 0
    assert [(r["id"], r["prompt"]) for r in read_index(out)] == [
        ("B2", "<lora:tech_phone:0.8> Oppo Find X, gold, neon style"),
        ("G7", made["prompt"]),
    ]
    assert read_failed(out) == {k: v for k, v in expected.items() if k != "B2"}
    assert (out / "index.html").read_text(encoding="utf-8").count("<figure") == 2


def read_failed(out: Path) -> dict[str, str]:
    with open(out / "failed.csv", encoding="utf-8") as handle:
        return {r["id"]: r["reason"] for r in csv.DictReader(handle)}


def test_bad_job_files_are_one_sentence(cli, make_job, tmp_path, rows):
    cases = [
        ({"stpes": 3}, "Unknown key 'stpes'", "Did you mean 'steps'?"),
        ({"prompt": "{brand} {colur}"}, "column 'colur'", "Did you mean 'colour'?"),
        ({"prompt": "<lora:tech_phon:1> {brand}"}, "No LoRA named 'tech_phon'", "Did you mean 'tech_phone'?"),
        ({"rows": [*rows, rows[0]]}, "The id 'AP-IP15' appears twice", "lines 2 and 5"),
        ({"sampler": "Euler b"}, "Unknown sampler 'Euler b'", "Did you mean 'Euler a'?"),
        ({"width": 30}, "30x32 in", "is not a multiple of 8"),
    ]
    for keys, what, hint in cases:
        result = cli("batch", make_job(**keys))
        assert result.returncode == 2, result.stderr
        assert what in result.stderr and hint in result.stderr and "Traceback" not in result.stderr
    job = make_job()
    raw = yaml.safe_load(job.read_text(encoding="utf-8"))
    raw["itmes"] = raw.pop("items")  # a required key misspelt: the spelling is the problem, not a missing key
    job.write_text(yaml.safe_dump(raw), encoding="utf-8")
    misspelt = cli("batch", job)
    assert misspelt.returncode == 2 and "Unknown key 'itmes'" in misspelt.stderr
    assert "Did you mean 'items'?" in misspelt.stderr and "has no 'items' key" not in misspelt.stderr
    for given in ("2", "1"):  # a given --processes, 1 included (as train's), is not Ray's default
        both = cli("batch", make_job(), "--ray", "local", "--processes", given)
        assert both.returncode == 2 and "--ray and --processes cannot be used together" in both.stderr
    none = cli("batch", make_job(), "--processes", "0")
    assert none.returncode == 2 and "--processes is 0" in none.stderr and "Traceback" not in none.stderr
    assert not (tmp_path / "out").exists()


def test_changed_job_is_refused_and_new_rows_are_added(cli, make_job, tmp_path, rows):
    job = make_job(images_per_item=1)
    assert cli("batch", job).returncode == 0
    out = tmp_path / "out"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    make_job(images_per_item=1, steps=4)
    refused = cli("batch", job)
    assert refused.returncode == 2 and "The job changed" in refused.stderr and "(steps)" in refused.stderr
    make_job(images_per_item=1, compile=True)  # compiled kernels may round differently
    refused = cli("batch", job)
    assert refused.returncode == 2 and "(compile)" in refused.stderr
    assert "compile" not in json.loads((out / "job.json").read_text(encoding="utf-8"))  # off: absent
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before

    extra = {"id": "HW-P60", "brand": "Huawei", "model": "P60", "category": "phone", "colour": "white"}
    make_job(rows=[*rows, extra], images_per_item=1)
    assert cli("batch", job).returncode == 0
    assert [r["id"] for r in read_index(out)] == [*(r["id"] for r in rows), "HW-P60"]
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # finished images untouched

    make_job(images_per_item=1, steps=4)
    assert cli("batch", job, "--new").returncode == 0
    # a folder with files no job made is not written into
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "index.csv").write_text("mine", encoding="utf-8")
    refused = cli("batch", make_job(output_dir="theirs", name="other.yaml"))
    assert refused.returncode == 2 and "already holds index.csv" in refused.stderr
    assert (theirs / "index.csv").read_text(encoding="utf-8") == "mine" and not (theirs / "images").exists()
    (aside,) = out.glob("replaced-*")
    assert len(read_index(aside)) == 4 and len(read_index(out)) == 3


def test_a_changed_lora_file_is_refused(cli, make_job, tmp_path, rows, batch_loras):
    folder = tmp_path / "Lora"
    shutil.copytree(batch_loras, folder)
    job = make_job(rows=rows[:1], images_per_item=1, lora_dir=str(folder))
    assert cli("batch", job).returncode == 0
    shutil.copy(folder / "metal.safetensors", folder / "tech_phone.safetensors")  # retrained, same name
    refused = cli("batch", job)
    assert (
        refused.returncode == 2 and "The job changed" in refused.stderr and "(lora_files)" in refused.stderr
    )


def test_thumbnails_are_small_jpegs_of_the_image():
    from lora_scripts.batch.run import thumbnail

    wide = Image.new("RGB", (1024, 768), (200, 40, 90))
    with Image.open(io.BytesIO(thumbnail(wide))) as small:
        assert small.format == "JPEG" and small.size == (256, 192)
        assert max(abs(a - b) for a, b in zip(small.getpixel((100, 100)), (200, 40, 90), strict=True)) < 4


def test_a_job_with_a_vae_decodes_with_it_and_a_swapped_vae_is_refused(cli, make_job, tmp_path, rows):
    """`vae:` as training's: the PNGs name it as WebUI does, job.json holds it, and another file at that path
    (a retrained VAE) is refused like a changed LoRA; a missing one is one sentence before anything runs."""
    from safetensors.torch import save_file

    from lora_scripts.models.tiny import build_tiny_sd

    def save_vae(seed: int) -> None:
        weights = build_tiny_sd(seed=seed).vae.state_dict()
        save_file({k: v.contiguous() for k, v in weights.items()}, tmp_path / "my-vae.safetensors")

    plain = make_job(rows=rows[:1], images_per_item=1, output_dir="plain", name="plain.yaml")
    assert cli("batch", plain).returncode == 0
    save_vae(7)
    job = make_job(rows=rows[:1], images_per_item=1, vae="my-vae.safetensors")  # beside the job file
    assert cli("batch", job).returncode == 0, "VAE"
    (row,) = read_index(tmp_path / "out")
    (same,) = read_index(tmp_path / "plain")
    assert row["seed"] == same["seed"] and row["sha256"] != same["sha256"]  # same latents, other decoder
    assert "VAE: my-vae.safetensors" in Image.open(tmp_path / "out" / row["file"]).info["parameters"]
    assert json.loads((tmp_path / "out" / "job.json").read_text())["vae"] == str(
        tmp_path / "my-vae.safetensors"
    )
    save_vae(8)  # retrained, same name and size
    refused = cli("batch", job)
    assert refused.returncode == 2 and "The job changed" in refused.stderr and "vae_sha256" in refused.stderr
    missing = cli("batch", make_job(vae="nowhere.safetensors", output_dir="other"))
    assert missing.returncode == 2 and "VAE 'nowhere.safetensors'" in missing.stderr
    assert "Traceback" not in missing.stderr and not (tmp_path / "other").exists()


def test_a_pickle_base_model_or_vae_is_refused_with_advice_a_job_can_follow(cli, make_job, tmp_path):
    """A job has no allow_pickle: the sentence says to use the .safetensors version, not to set one."""
    (tmp_path / "base.ckpt").write_bytes(b"never unpickled")
    (tmp_path / "vae.pt").write_bytes(b"never unpickled")
    for keys, what in (({"base_model": "base.ckpt"}, "Base model"), ({"vae": "vae.pt"}, "VAE")):
        result = cli("batch", make_job(**keys))
        assert result.returncode == 2, result.stderr
        assert f"{what} '{tmp_path}" in result.stderr and "is a pickle" in result.stderr
        assert "Use its .safetensors version" in result.stderr and "allow_pickle" not in result.stderr
        assert "Traceback" not in result.stderr and result.stderr.count("Error:") == 1
    assert not (tmp_path / "out").exists()


def test_a_bad_job_with_processes_is_one_sentence_before_any_process_starts(run_cli, make_job, tmp_path):
    """--processes 2 used to start both ranks, and each printed the same error."""
    for keys, what in (
        ({"prompt": "{brand} {colur}"}, "column 'colur'"),
        ({"prompt": "<lora:tech_phon:1> {brand}"}, "No LoRA named 'tech_phon'"),
    ):
        result = run_cli("batch", str(make_job(**keys)), "--processes", "2")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.count(what) == 1, result.stderr
    assert not (tmp_path / "out").exists()
