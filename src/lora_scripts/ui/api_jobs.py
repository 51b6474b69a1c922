"""The train, generate, LoRA library and jobs API. Each action is a job running the `lora-scripts` CLI
(train, generate, lora ...) in the workspace; nothing here trains, generates or edits a LoRA itself."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, File, Request, UploadFile
from pydantic import BaseModel

from ..train.progress import FILE_NAME as PROGRESS_FILE
from ..train.progress import read_progress
from . import forms, presets
from .field_text import FACT_ZH, FIELD_ZH
from .i18n import MESSAGES, t
from .jobs import RUNNING, JobStore, cli
from .server import UiError, request_lang
from .workspace import Workspace, WorkspaceError

# Keys a designer does not see on the route's form (the chat route's own keys).
HIDDEN_ROUTE = "llm"
# The page's own default: an empty output folder means loras/<LoRA name> (the library), see form_values.
UI_DEFAULTS = {"output_dir": {"default": ""}}


class TrainRequest(BaseModel):
    values: dict[str, Any] = {}
    presets: list[str] = []


class LoraPick(BaseModel):
    path: str
    weight: float = 1.0


class GenerateRequest(BaseModel):
    model: str
    loras: list[LoraPick] = []
    prompt: str = ""  # one prompt per line: several lines make the rows of the grid
    negative: str = ""
    sampler: str = "Euler a"
    steps: int = 20
    cfg: float = 7.0
    seed: int = 1
    width: int = 512
    height: int = 512
    count: int = 1
    grid_weights: str = ""  # "0,0.5,1": columns of the first LoRA's weight
    grid_seeds: str = ""  # "1,2,3": exact seeds (replaces seed/count)


class ToolRequest(BaseModel):
    tool: str  # resize, merge-loras, merge, extract
    inputs: list[str] = []  # workspace paths (LoRAs with :weight for the merges; tuned+base for extract)
    base: str = ""
    out: str = ""
    rank: int | None = None


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
        from ..config.show import resolved_yaml

        text = resolved_yaml(build_config(dict(values), source=forms.FORM_SOURCE))
    return values, errors, text


def flat_values(text: str) -> dict[str, Any]:
    """A config YAML (flat or with sections) as flat form values."""
    from ..config.root import SECTIONS

    data = yaml.safe_load(text) or {}
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
    since = job.get("started") or 0
    losses: dict[int, float] = {}
    last: dict[str, Any] = {}
    samples: list[dict] = []
    for event in events:
        if event["event"] == "step":
            losses[event["step"]] = event["loss"]
            if event["time"] >= since - 1:
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
        config = ws.resolve(f"configs/{name}-{_stamp()}.yaml")
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text + "\n", encoding="utf-8")
        rel = config.relative_to(ws.root).as_posix()
        extra = {"config": rel, "output_dir": values["output_dir"], "lora_name": name}
        return {"job": jobs.submit("train", cli("train", "-c", rel), f"train {name}", extra), "errors": {}}

    @app.get("/api/jobs")
    def list_jobs():
        jobs.tick()
        return {"jobs": [{**job, "result": _result(ws, job)} for job in jobs.all()]}

    @app.get("/api/jobs/{job_id}")
    def job_detail(job_id: str):
        job = _job(jobs, job_id)
        progress = train_progress(ws, job) if job["kind"] == "train" else {}
        return {"job": job, "log": jobs.log_tail(job_id), "progress": progress}

    @app.post("/api/jobs/{job_id}/stop")
    def stop_job(job_id: str):
        _job(jobs, job_id)
        return {"job": jobs.stop(job_id)}

    @app.post("/api/jobs/{job_id}/resume")
    def resume_job(job_id: str):
        job = _job(jobs, job_id)
        if job["kind"] != "train":
            raise UiError("ui.not_resumable", 400)
        extra = {k: job[k] for k in ("config", "output_dir", "lora_name")}
        command = cli("train", "-c", job["config"], "resume=auto")
        return {"job": jobs.submit("train", command, f"resume {job['lora_name']}", extra)}

    @app.post("/api/generate")
    def generate(req: GenerateRequest):
        return {"job": jobs.submit("generate", *_generate_command(ws, req))}

    @app.get("/api/gallery")
    def gallery():
        return {"images": _gallery(ws)}

    @app.get("/api/loras")
    def loras(request: Request):
        zh = request_lang(request, app.state.settings.lang) == "zh"
        items = _library(ws)
        for item in items:  # inspect's facts with their names in the page's language
            facts = item["facts"].get("facts", {})
            item["facts_shown"] = [[FACT_ZH.get(k, k) if zh else k, v] for k, v in facts.items()]
        return {"loras": items}

    @app.post("/api/tools")
    def tool(req: ToolRequest):
        command, title = _tool_command(ws, req)
        return {"job": jobs.submit("tool", command, title, {"out": req.out})}


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


def _result(ws: Workspace, job: dict) -> str | None:
    """The link to what a job made (once it is there): the training report, the doctor's report, the
    captions, the generated grid or first image, the tool's file."""
    if job["kind"] == "train":
        candidates = [f"{job.get('output_dir')}/report.html"]
    elif job["kind"] in ("doctor", "label"):
        name = "doctor_report.html" if job["kind"] == "doctor" else "metadata.csv"
        candidates = [f"{job.get('dataset')}/{name}"]
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


def _stamp() -> str:
    """Date, time and a few random letters: two clicks in the same second get two names."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def _job(jobs: JobStore, job_id: str) -> dict:
    try:
        return jobs.read(job_id)
    except KeyError as exc:
        raise UiError("ui.no_job", 404, id=job_id) from exc


def _generate_command(ws: Workspace, req: GenerateRequest) -> tuple[list[str], str, dict]:
    model = ws.relative(req.model)
    stems = [Path(ws.relative(p.path)).stem for p in req.loras]
    for pick in req.loras:
        if not ws.resolve(pick.path).is_relative_to(ws.root / "loras"):
            raise UiError("ui.lora_outside", 400, path=pick.path)
    prompts = [line.strip() for line in req.prompt.splitlines() if line.strip()]
    if not prompts:
        raise UiError("ui.no_prompt", 400)
    for size in (req.width, req.height):
        if size < 8 or size % 8:
            raise UiError("ui.bad_size", 400, size=size)
    for number in (req.steps, req.count):
        if number < 1:
            raise UiError("ui.at_least_one", 400, value=number)
    sweep = stems[0] if req.grid_weights.strip() and stems else None
    tags = " ".join(f"<lora:{s}:{p.weight:g}>" for s, p in zip(stems, req.loras, strict=True) if s != sweep)
    out = f"outputs/gen-{_stamp()}"
    out_dir = ws.resolve(out)
    args = ["generate", "-m", model, "-l", "loras", "-o", out, "-n", req.negative]
    args += ["--sampler", req.sampler, "--steps", str(req.steps), "--cfg", f"{req.cfg:g}"]
    args += ["-W", str(req.width), "-H", str(req.height)]
    if req.grid_seeds.strip():
        args += ["--seeds", req.grid_seeds.strip()]
    else:
        args += ["--seed", str(req.seed), "--count", str(req.count)]
    if sweep:
        args += ["--weights", req.grid_weights.strip(), "--lora", sweep]
    full = [f"{tags} {p}".strip() for p in prompts]
    if len(full) > 1:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "prompts.txt").write_text("\n".join(full) + "\n", encoding="utf-8")
        args += ["-p", f"{out}/prompts.txt"]
    else:
        args += ["--", full[0]]
    return cli(*args), f"generate {prompts[0][:40]}", {"out": out}


def _png_parameters(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return str(getattr(img, "text", {}).get("parameters", ""))
    except OSError:
        return ""


def _gallery(ws: Workspace) -> list[dict]:
    found = []
    for folder in sorted((ws.root / "outputs").glob("gen-*"), reverse=True):
        for image in sorted(folder.glob("*.png")):
            if ws._inside(image):
                rel = image.relative_to(ws.root).as_posix()
                found.append(
                    {
                        "url": f"/files/{rel}",
                        "name": rel,
                        "parameters": _png_parameters(image),
                        "grid": image.name.startswith("grid-"),
                    }
                )
    return found[:200]


def _library(ws: Workspace) -> list[dict]:
    """Every LoRA in `loras/` with its inspect facts (finished ones first; checkpoints saved on the way are
    listed without them), its sample grid and report when training wrote them."""
    from ..tools.inspect_lora import describe

    items = []
    for rel in ws.listing()["loras"]:
        if "/state/" in f"/{rel}":
            continue
        path = ws.root / rel
        if re.search(r"-(step|epoch)\d+$", path.stem):
            items.append({"path": rel, "name": path.stem, "facts": {}, "checkpoint": True})
            continue
        try:
            facts = describe(path, top=10)
        except Exception as exc:  # a damaged or foreign file: its sentence instead of the facts
            facts = {"error": str(exc)}
        folder = path.parent.relative_to(ws.root).as_posix()
        extra = {}
        if (path.parent / "samples" / "grid.png").is_file():
            extra["grid"] = f"/files/{folder}/samples/grid.png"
        if (path.parent / "report.html").is_file():
            extra["report"] = f"/files/{folder}/report.html"
        items.append({"path": rel, "name": path.stem, "facts": facts, "checkpoint": False, **extra})
    return sorted(items, key=lambda item: (item["checkpoint"], item["path"]))


def _tool_command(ws: Workspace, req: ToolRequest) -> tuple[list[str], str]:
    if req.tool not in ("resize", "merge-loras", "merge", "extract"):
        raise UiError("ui.bad_choice", 400, value=req.tool, choices="resize, merge-loras, merge, extract")
    if not req.out.strip():
        raise UiError("ui.no_output", 400)
    out = ws.relative(req.out)

    def confined(item: str) -> str:
        path, sep, weight = item.rpartition(":") if req.tool in ("merge", "merge-loras") else ("", "", "")
        if sep and _is_number(weight):
            return f"{ws.relative(path)}:{weight}"
        return ws.relative(item)

    inputs = [confined(i) for i in req.inputs if i.strip()]
    if not inputs:
        raise UiError("ui.no_input", 400)
    args = ["lora", req.tool]
    if req.tool == "merge":
        args += [ws.relative(req.base), *inputs]
    else:
        args += inputs
    args += ["--out", out]
    if req.rank and req.tool in ("resize", "merge-loras", "extract"):
        args += ["--rank", str(req.rank)]
    return cli(*args), f"lora {req.tool} -> {out}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
