"""What makes a job's images what they are, kept in output_dir/job.json: a changed job is refused, not mixed
into the old images (new rows in `items` are fine: they are simply made)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from ..generate.library import short_hash
from .config import JobConfig

FILE = "job.json"
# What a previous run leaves in output_dir; --new moves these aside, nothing is deleted
OUTPUTS = ("images", "parts", "index.csv", "failed.csv", "index.html", FILE, "progress.jsonl")


def facts(job: JobConfig, lora_files: dict[str, Path], dtype: str) -> dict:
    model = Path(job.base_model)
    return {
        "base_model": job.base_model,
        "base_model_bytes": model.stat().st_size if model.is_file() else None,
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
        changed = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
        if changed:
            raise ConfigError(
                f"The job changed since '{out}' was started ({', '.join(changed)}), so its images would not "
                "match the ones already made",
                "Run with --new (the old results are moved to a replaced-<time> folder) "
                "or set a new output_dir",
            )
        return
    theirs = [name for name in OUTPUTS if out.exists(name)]
    if theirs:  # not made by a job (no job.json): never write over someone's files
        raise ConfigError(
            f"The output folder '{out}' already holds {', '.join(theirs)}, which no batch job made there",
            "Choose an empty or new output_dir",
        )
    out.start()
    out.write_text(FILE, json.dumps(now, indent=1, ensure_ascii=False, sort_keys=True))
