"""The job file: pydantic models (unknown keys are errors, with did-you-mean), read like training's config."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from ..config.base import Section
from ..config.load import read_yaml
from ..config.sample import sampler_name
from ..errors import ConfigError
from ..models.detect import refuse_pickle
from .store import filesystem_class, split_uri


class Override(Section):
    """What changes for the items of one value of the `by` column (e.g. one category)."""

    prompt: str | None = Field(None, description="Prompt template for these items instead of `prompt`.")
    negative_prompt: str | None = Field(None, description="Negative prompt for these items.")
    loras: dict[str, float] = Field(
        default_factory=dict, description="LoRAs (name or path: weight) added for these items."
    )


class JobConfig(Section):
    base_model: str = Field(..., description="Base model: .safetensors file, diffusers folder or hub id.")
    items: Path = Field(..., description="The catalogue: a CSV or JSONL file, one row per device model.")
    id_column: str = Field("id", description="The column that names each item (file names, index).")
    prompt: str = Field(..., description="Template with {column} placeholders and <lora:name:w> tags.")
    negative_prompt: str = Field("", description="Negative prompt (may use {column} placeholders).")
    by: str | None = Field(None, description="Column whose value picks an entry of `overrides`.")
    overrides: dict[str, Override] = Field(
        default_factory=dict, description="Per value of `by`: prompt, negative_prompt, loras."
    )
    lora_dir: Path | None = Field(None, description="Folder in which <lora:NAME:w> tags are looked up.")
    loras: dict[str, float] = Field(
        default_factory=dict,
        description="LoRAs for every item besides the prompt's tags: name or path: weight.",
    )
    images_per_item: int = Field(1, ge=1, description="Images per item (n = 0, 1, ...).")
    seed: int = Field(0, ge=0, description="Job seed; each image's seed is derived from (seed, id, n).")
    width: int = Field(512, gt=0, description="Image width (multiple of 8).")
    height: int = Field(512, gt=0, description="Image height (multiple of 8).")
    steps: int = Field(20, ge=1, description="Sampling steps.")
    cfg: float = Field(7.0, description="CFG scale.")
    sampler: str = Field("Euler a", description="Euler a, Euler, DPM++ 2M, DPM++ 2M Karras, DDIM, UniPC.")
    batch_size: int = Field(4, ge=1, description="Images per pipeline call.")
    output_dir: str = Field(
        ...,
        description="Folder for images/, index.csv, failed.csv, index.html; or an fsspec URI such as "
        "s3://bucket/prefix, gs://bucket/prefix (pip install s3fs / gcsfs).",
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for a URI output_dir (e.g. profile, endpoint_url in client_kwargs); "
        "not part of job.json.",
    )
    device: str = Field("auto", description="auto, cpu, cuda (each process of a sharded run: its own GPU).")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="auto: fp16 on GPU.")
    compile: bool = Field(
        False,
        description="torch.compile the UNet: each process first compiles for a minute or more, then every "
        "batch is faster on a GPU (on a CPU it rarely pays back). Part of job.json when on.",
    )
    prediction_type: Literal["auto", "epsilon", "v_prediction"] = Field("auto", description="As training.")
    vae: str | None = Field(
        None,
        description="A VAE instead of the base model's (a WebUI VAE file or diffusers VAE folder), as "
        "training's vae; part of job.json when set.",
    )


def load_job(path: Path) -> JobConfig:
    """Read and validate a job file; relative paths are relative to the job file's folder."""
    raw = read_yaml(Path(path))
    try:
        job = JobConfig(**raw)
    except ValidationError as exc:  # a misspelt key first: it is why a required key looks missing
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
        raise ConfigError(_explain(errors[0], path)) from None
    sampler_name(job.sampler)  # an unknown sampler: one sentence now, not after the model loads
    if job.width % 8 or job.height % 8:
        near = [
            f"{k} to e.g. {_eights(v)}" for k, v in (("width", job.width), ("height", job.height)) if v % 8
        ]
        raise ConfigError(
            f"Image size {job.width}x{job.height} in {path} is not a multiple of 8",
            f"Set {' and '.join(near)}",
        )
    if job.by is None and job.overrides:
        raise ConfigError(f"{path} has `overrides` but no `by` column", "Add e.g. `by: category`")
    base = Path(path).resolve().parent
    updates = {k: base / getattr(job, k) for k in ("items", "lora_dir") if getattr(job, k)}
    protocol, where = split_uri(job.output_dir)
    if protocol is None:  # a folder (or file://): relative to the job file, as every path in it
        updates["output_dir"] = str(base / where)
    else:
        filesystem_class(job.output_dir, protocol)  # a missing s3fs/gcsfs: one sentence before anything runs
    for key in ("base_model", "vae"):  # a file beside the job file, or a hub id / absolute path as given
        given = getattr(job, key)
        if given and not Path(given).is_absolute() and (base / given).exists():
            updates[key] = str(base / given)
    if job.vae and not Path(updates.get("vae", job.vae)).exists():
        raise ConfigError(f"VAE '{job.vae}' in {path} does not exist", "Fix the path in vae, or remove vae")
    refuse_pickle(updates.get("base_model", job.base_model), "Base model")  # no allow_pickle in a job: now,
    refuse_pickle(updates.get("vae", job.vae), "VAE")  # not once the model libraries load in every rank
    updates["loras"] = _lora_paths(job.loras, base)
    updates["overrides"] = {
        k: o.model_copy(update={"loras": _lora_paths(o.loras, base)}) for k, o in job.overrides.items()
    }
    return job.model_copy(update=updates)


def _eights(size: int) -> str:
    """The multiples of 8 either side of `size` (60: '56 or 64'), the size a designer meant."""
    below = size // 8 * 8
    return f"{below} or {below + 8}" if below else "8"


def _lora_paths(loras: dict[str, float], base: Path) -> dict[str, float]:
    """`loras:` keys that are files are read relative to the job file's folder."""
    return {str(base / k) if k.endswith(".safetensors") else k: w for k, w in loras.items()}


# pydantic's error types, as the end of "'key' in job.yaml must be ..."
_KINDS = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "an ordinary number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "text",
    "path_type": "a path",
    "dict_type": "`name: value` lines",
}
_BOUNDS = {"greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than"}


def _explain(err: dict, path: Path) -> str:
    """One plain sentence for pydantic's error: what the key must be and what it was."""
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        fields = Override.model_fields if len(err["loc"]) > 1 else JobConfig.model_fields
        close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
        hint = f"Did you mean '{close[0]}'?" if close else f"Known keys: {', '.join(fields)}"
        return f"Unknown key '{where}' in {path}. {hint}"
    if err["type"] == "missing":
        return f"The job file {path} has no '{where}' key. Add it (see configs/batch_catalogue.yaml)"
    return f"'{where}' in {path} must be {_allowed(err)}, not {_shown(err.get('input'))}"


def _allowed(err: dict) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _KINDS:
        return _KINDS[kind]
    if kind in _BOUNDS:
        return f"{_BOUNDS[kind]} {next(iter(ctx.values()), '')}"
    if kind == "literal_error":
        return f"one of {str(ctx.get('expected', '')).replace(chr(39), '')}"
    msg = str(err.get("msg", "")).rstrip(".")
    return msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else f"valid ({msg})"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
