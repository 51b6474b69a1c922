"""What makes a job's images what they are, kept in output_dir/job.json: a changed job is refused, not mixed
into the old images (new rows in `items` are fine: they are simply made)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ConfigError
from ..generate.library import short_hash
from .config import JobConfig
from .unchanged import FILE as NEGATIVES

FILE = "job.json"
# What a previous run leaves in output_dir; --new moves these aside, nothing is deleted
OUTPUTS = (
    *("images", "thumbs", "parts", "index.csv", "failed.csv", "index.html"),
    *(FILE, NEGATIVES, "progress.jsonl"),
)
WEIGHTS = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")  # the files of a diffusers folder that are sampled
SAMPLE = 1 << 20
# Facts added after jobs were started without them: such a job.json is completed, not refused (its other
# facts, the model's path and size among them, still have to match)
LATER = ("base_model_sampled_sha256",)


def sampled_sha256(model: Path) -> str | None:
    """sha256 of each weight file's size and 1 MiB at its start, middle, end: sampled, not 2-7 GB per run."""
    if model.is_file():
        files = [model]
    else:  # a diffusers folder's weight files, sorted by path; a hub id has none on this disk
        files = sorted((p for p in model.rglob("*") if p.suffix in WEIGHTS), key=str)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.relative_to(model).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as handle:
            for offset in (0, max(size - SAMPLE, 0) // 2, max(size - SAMPLE, 0)):
                handle.seek(offset)
                digest.update(handle.read(SAMPLE))
    return digest.hexdigest()


def facts(job: JobConfig, lora_files: dict[str, Path], dtype: str) -> dict:
    model = Path(job.base_model)
    return {
        "base_model": job.base_model,
        "base_model_bytes": model.stat().st_size if model.is_file() else None,
        "base_model_sampled_sha256": sampled_sha256(model),  # a fine-tune has the same size
        "lora_files": {name: short_hash(path) for name, path in sorted(lora_files.items())},
        **job.model_dump(
            mode="json",
            include={
                "id_column",
                "prompt",
                "negative_prompt",
                "by",
                "overrides",
                "loras",
                "images_per_item",
                "seed",
                "width",
                "height",
                "steps",
                "cfg",
                "sampler",
                "batch_size",
                "prediction_type",
            },
        ),
        "dtype": dtype,
        **({"vae": job.vae, "vae_sha256": sampled_sha256(Path(job.vae))} if job.vae else {}),
        **({"compile": True} if job.compile else {}),  # compiled kernels may round differently; absent
        # when off, so the job.json of a job started before the key existed still matches
    }


def check_or_start(out, now: dict, new: bool) -> None:
    """First run: write job.json. Later runs: the same facts, or a refusal naming what changed. `out`: the
    job's output (store.py: a local folder or an fsspec location)."""
    if new and out.exists(FILE):
        out.move_aside(tuple(name for name in OUTPUTS if out.exists(name)))
    before = out.read_text(FILE)
    if before is not None:
        before = json.loads(before)
        added = {k: now[k] for k in LATER if k not in before and now.get(k) is not None}
        changed = [
            k for k in sorted(set(before) | set(now)) if k not in added and before.get(k) != now.get(k)
        ]
        if changed == ["base_model_sampled_sha256"]:
            raise ConfigError(
                f"The base model '{now['base_model']}' is not the one '{out}' was started with (same path "
                "and size, other weights: a fine-tune?), so its images would not match the ones already made",
                "Put the first model back, run with --new (the old results are moved to a replaced-<time> "
                "folder) or set a new output_dir",
            )
        if changed:
            raise ConfigError(
                f"The job changed since '{out}' was started ({', '.join(changed)}), so its images would not "
                "match the ones already made",
                "Run with --new (the old results are moved to a replaced-<time> folder) "
                "or set a new output_dir",
            )
        if added:  # started before these facts existed: from now on they are checked too
            _write(out, {**before, **added})
        return
    theirs = [name for name in OUTPUTS if out.exists(name)]
    if theirs:  # not made by a job (no job.json): never write over someone's files
        raise ConfigError(
            f"The output folder '{out}' already holds {', '.join(theirs)}, which no batch job made there",
            "Choose an empty or new output_dir",
        )
    out.start()
    _write(out, now)


def _write(out, facts: dict) -> None:
    out.write_text(FILE, json.dumps(facts, indent=1, ensure_ascii=False, sort_keys=True))
