"""The train page and the jobs API: the form (from config/), its checks and YAML, start / stop / resume /
queue, and each job's log and progress. A training is `lora-scripts train -c workspace/configs/X.yaml` run
as a job; nothing here trains."""

from __future__ import annotations

import time
import uuid
from typing import Any

import yaml
from fastapi import FastAPI, File, Request, UploadFile
from pydantic import BaseModel

from ..config.read import load_yaml_text
from ..progress import FILE_NAME as PROGRESS_FILE
from ..progress import read_progress
from . import forms, job_progress, presets
from .field_text import FIELD_ZH
from .i18n import MESSAGES, t
from .jobs import FAILED, RUNNING, JobStore, cli
from .server import UiError, request_lang
from .workspace import Workspace, WorkspaceError

# Keys a designer does not see on the route's form (the chat route's own keys).
HIDDEN_ROUTE = "llm"
# The page's own default: an empty output folder means loras/<LoRA name> (the library), see form_values.
UI_DEFAULTS = {"output_dir": {"default": ""}}
# The data keys whose default depends on the base model's family (train/family_defaults.py).
FAMILY_KEYS = ("resolution", "max_bucket_reso")


class TrainRequest(BaseModel):
    values: dict[str, Any] = {}
    presets: list[str] = []


def form_values(ws: Workspace, values: dict[str, Any], lang: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values with every path confined to the workspace and written relative to it (jobs run in
    the workspace), and the output folder filled in (`loras/<LoRA name>`); plus {field: refusal}."""
    fields = {f.name: f for f in forms.form_fields()}
    errors: dict[str, str] = {}
    clean = {k: v for k, v in values.items() if v not in (None, "")}
    if clean.get("output_name") and not clean.get("output_dir"):
        clean["output_dir"] = f"loras/{clean['output_name']}"
    for key, value in list(clean.items()):
        field = fields.get(key)
        if field is None or field.type != "path" or not isinstance(value, str):
            continue
        try:
            clean[key] = ws.relative(value) or "."
        except WorkspaceError as exc:
            errors[key] = exc.text(lang)
    return clean, errors


def check_form(ws: Workspace, req: TrainRequest, lang: str) -> tuple[dict[str, Any], dict[str, str], str]:
    """(values, errors, resolved YAML) of a filled-in form."""
    unknown = [p for p in req.presets if p not in presets.PRESETS]
    if unknown:
        raise UiError("ui.bad_choice", 400, value=unknown[0], choices=", ".join(presets.PRESETS))
    values, errors = form_values(ws, presets.apply(req.values, *req.presets), lang)
    errors.update({k: v for k, v in forms.validate(values, lang).items() if k not in errors})
    text = ""
    if not errors:
        from ..config import build_config

        text = job_yaml(ws, build_config(dict(values), source=forms.FORM_SOURCE))
    return values, errors, text


def job_yaml(ws: Workspace, cfg) -> str:
    """The YAML a job runs, as `train --dry-run` shows it: every default filled in, those of the base
    model's family too (SDXL trains at 1024 px, SD 1.5 at 512; train/family_defaults.py), since a key the
    file names wins over the family. A base that cannot be read yet leaves those keys to the run."""
    from ..config.show import resolved_yaml
    from ..errors import LoraScriptsError
    from ..train.family_defaults import with_family_defaults

    if cfg.data is None:  # the chat route has no image sizes
        return resolved_yaml(cfg)
    try:
        base = ws.resolve(str(cfg.model.base_model))  # jobs run in the workspace; this process may not
        if base.exists():
            probe = cfg.model_copy(update={"model": cfg.model.model_copy(update={"base_model": str(base)})})
            return resolved_yaml(cfg.model_copy(update={"data": with_family_defaults(probe).data}))
    except (WorkspaceError, LoraScriptsError):  # not a model: the job says so when it loads it
        pass
    given = cfg.data.model_fields_set
    left = [key for key in FAMILY_KEYS if key not in given]
    lines = [line for line in resolved_yaml(cfg).splitlines() if line.partition(":")[0] not in left]
    note = [f"# {key}: from the base model (SD 1.5: 512, SDXL: 1024)" for key in left if key == "resolution"]
    return "\n".join(lines + note)


def flat_values(text: str) -> dict[str, Any]:
    """A config YAML (flat or with sections) as flat form values."""
    from ..config.root import SECTIONS

    data = load_yaml_text(text) or {}
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[str(key)] = value
    return flat


def train_progress(ws: Workspace, job: dict) -> dict:
    """Steps, losses, ETA and sample images of a training job, from its progress events."""
    out = job.get("output_dir")
    if not out:
        return {}
    folder = ws.root / out
    events = read_progress(folder / PROGRESS_FILE)
    since, until = job.get("started") or 0, job.get("finished") or float("inf")
    losses: dict[int, float] = {}
    last: dict[str, Any] = {}
    samples: list[dict] = []
    for event in events:
        if event["event"] == "step":
            losses[event["step"]] = event["loss"]
            if since - 1 <= event["time"] <= until + 1:  # this job's own steps (a resume appends)
                last = event
        elif event["event"] == "samples":
            for name in event["files"]:
                samples.append({"step": event["step"], "url": f"/files/{out}/samples/{name}"})
    return {
        "steps": sorted(losses.items()),
        "step": last.get("step", max(losses) if losses else 0),
        "total": last.get("total") or next((e["total"] for e in events if "total" in e), None),
        "eta_s": last.get("eta_s") if job["status"] == RUNNING else None,
        "samples": samples[-24:],
        "report": f"/files/{out}/report.html" if (folder / "report.html").is_file() else None,
    }


def register(app: FastAPI, ws: Workspace, jobs: JobStore) -> None:
    @app.get("/api/train/form")
    def train_form(request: Request):
        lang = request_lang(request, app.state.settings.lang)
        return {
            "fields": [
                {**f.__dict__, **_words(f, lang), **UI_DEFAULTS.get(f.name, {})}
                for f in forms.form_fields()
                if f.route != HIDDEN_ROUTE
            ],
            "presets": [{"name": n, "label": t(presets.PRESET_LABELS[n], lang)} for n in presets.PRESETS],
        }

    @app.post("/api/train/check")
    def train_check(req: TrainRequest, request: Request):
        values, errors, text = check_form(ws, req, request_lang(request, app.state.settings.lang))
        return {"values": values, "errors": errors, "yaml": text}

    @app.post("/api/train/load")
    async def train_load(file: UploadFile = File(...)):
        try:
            return {"values": flat_values((await file.read(1_000_000)).decode("utf-8"))}
        except (ValueError, yaml.YAMLError) as exc:
            raise UiError("ui.bad_yaml", 400, name=file.filename or "") from exc

    @app.post("/api/train/start")
    def train_start(req: TrainRequest, request: Request):
        values, errors, text = check_form(ws, req, request_lang(request, app.state.settings.lang))
        if errors:
            return {"errors": errors}
        name = values.get("output_name") or "lora"
        config = ws.resolve(f"configs/{name}-{stamp()}.yaml")
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text + "\n", encoding="utf-8")
        rel = config.relative_to(ws.root).as_posix()
        extra = {"config": rel, "output_dir": values["output_dir"], "lora_name": name}
        return {"job": jobs.submit("train", cli("train", "-c", rel), f"train {name}", extra), "errors": {}}

    @app.get("/api/jobs")
    def list_jobs(request: Request):
        jobs.tick()
        lang = request_lang(request, app.state.settings.lang)
        shown = [{**job, "result": _result(ws, job), **_state(ws, jobs, job, lang)} for job in jobs.all()]
        return {"jobs": shown}

    @app.get("/api/jobs/{job_id}")
    def job_detail(job_id: str, request: Request):
        job = _job(jobs, job_id)
        progress = train_progress(ws, job) if job["kind"] == "train" else {}
        state = _state(ws, jobs, job, request_lang(request, app.state.settings.lang), progress)
        return {"job": job, "log": jobs.log_tail(job_id), "progress": progress, **state}

    @app.post("/api/jobs/{job_id}/stop")
    def stop_job(job_id: str):
        _job(jobs, job_id)
        return {"job": jobs.stop(job_id)}

    @app.post("/api/jobs/{job_id}/resume")
    def resume_job(job_id: str):
        job = _job(jobs, job_id)
        if job["kind"] == "batch":  # the same job file again: the batch CLI skips the finished images
            extra = {k: job[k] for k in ("config", "out")}
            return {"job": jobs.submit("batch", cli("batch", job["config"]), f"resume {job['title']}", extra)}
        if job["kind"] != "train":
            raise UiError("ui.not_resumable", 400)
        extra = {k: job[k] for k in ("config", "output_dir", "lora_name")}
        command = cli("train", "-c", job["config"], "resume=auto")
        return {"job": jobs.submit("train", command, f"resume {job['lora_name']}", extra)}


def _words(field: forms.FormField, lang: str) -> dict[str, str]:
    """A field's label and help in the page's language: the basic fields' own words (i18n), the advanced
    ones' Chinese names and hints (field_text), else the config key and its help from config/."""
    hint = f"hint.{field.name}"
    if hint in MESSAGES:
        return {"label": forms.label(field, lang), "help": t(hint, lang)}
    if lang == "zh" and field.name in FIELD_ZH:
        name, text = FIELD_ZH[field.name]
        return {"label": f"{name}（{field.name}）", "help": text}
    return {"label": forms.label(field, lang), "help": field.help}


def _state(ws: Workspace, jobs: JobStore, job: dict, lang: str, progress: dict | None = None) -> dict:
    """A job's bar (done / total / ETA) and, once it failed, why, in the page's language."""
    if job["kind"] == "train":
        bar = job_progress.train_bar(progress if progress is not None else train_progress(ws, job))
        events: list[dict] = []
    elif job["kind"] == "batch":  # its events are in its output folder, beside index.csv
        from .api_batch import batch_result

        bar, events = batch_result(ws, job)["bar"], []
    else:
        events = job_progress.stage_events(jobs.folder(job["id"]))
        bar = job_progress.stage_bar(job, events)
    tail = jobs.log_tail(job["id"], 2000) if job["status"] == FAILED else ""
    return {"bar": bar, "failure": job_progress.failure(job, events, tail, lang)}


def _result(ws: Workspace, job: dict) -> str | None:
    """The link to what a job made (once it is there): the training report, the doctor's report, the
    captions, the generated grid or first image, the tool's file."""
    if job["kind"] == "train":
        candidates = [f"{job.get('output_dir')}/report.html"]
    elif job["kind"] in ("doctor", "label"):
        name = "doctor_report.html" if job["kind"] == "doctor" else "metadata.csv"
        candidates = [f"{job.get('dataset')}/{name}"]
    elif job["kind"] == "batch":
        candidates = [f"{job.get('out')}/index.html"]
    elif job["kind"] == "generate":
        folder = ws.root / str(job.get("out"))
        found = sorted(folder.glob("grid-*.png")) + sorted(folder.glob("*.png")) if folder.is_dir() else []
        candidates = [p.relative_to(ws.root).as_posix() for p in found[:1]]
    else:
        candidates = [str(job.get("out") or "")]
    for rel in candidates:
        try:
            if rel and ws.resolve(rel).is_file():
                return f"/files/{ws.relative(rel)}"
        except WorkspaceError:
            continue
    return None


def stamp() -> str:
    """Date, time and a few random letters: two clicks in the same second get two names."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _job(jobs: JobStore, job_id: str) -> dict:
    try:
        return jobs.read(job_id)
    except KeyError as exc:
        raise UiError("ui.no_job", 404, id=job_id) from exc
