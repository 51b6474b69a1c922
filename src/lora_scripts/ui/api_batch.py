"""The batch page ("send to batch" from the generate page): a catalogue job file written from the generate
page's settings and an items CSV of the workspace, run as `lora-scripts batch configs/X.yaml`; its progress
from the job's own events (output_dir/progress.jsonl), its contact sheet, first images and failed rows.
Nothing here makes images; the job's checks are the batch package's own (load_job, read_items,
check_columns), called before anything starts so a bad CSV is a sentence next to the form."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml
from fastapi import FastAPI, File, Form, Request, UploadFile

from ..errors import LoraScriptsError
from ..progress import FILE_NAME as PROGRESS_FILE
from ..progress import read_progress
from .api_library import DrawSettings
from .api_train import stamp
from .i18n import t
from .jobs import RUNNING, JobStore, cli
from .server import UiError, request_lang
from .workspace import Workspace, WorkspaceError

ITEMS = "items"  # the workspace folder that holds uploaded items CSVs
NAME = re.compile(r"^[\w\u4e00-\u9fff][\w\u4e00-\u9fff.-]{0,80}$")
# The batch CLI's sentences the page has words for (else the English sentence is shown as it is).
KNOWN = [
    (re.compile(r"uses the column '(?P<column>[^']+)', which the items file does"), "batch.no_column"),
    (re.compile(r"has no id column '(?P<column>[^']+)'"), "batch.no_id_column"),
    (re.compile(r"The id '(?P<id>[^']+)' appears twice"), "batch.repeated_id"),
    (re.compile(r"is neither UTF-8 nor GB18030"), "batch.not_utf8"),
    (re.compile(r"'\{(?P<column>[^}]*)\}' in the template .* is not a column name"), "batch.bad_placeholder"),
]


class BatchRequest(DrawSettings):
    prompt: str = ""  # the template: {column} takes each row's value
    items: str = ""  # a CSV inside the workspace
    images_per_item: int = 1
    batch_size: int = 4
    output: str = ""  # the output folder's name, under outputs/


def register(app: FastAPI, ws: Workspace, jobs: JobStore) -> None:
    def lang_of(request: Request) -> str:
        return request_lang(request, app.state.settings.lang)

    @app.get("/api/batch/items")
    def item_files():
        found = sorted((ws.root / ITEMS).rglob("*.csv")) if (ws.root / ITEMS).is_dir() else []
        return {"items": [p.relative_to(ws.root).as_posix() for p in found if ws._inside(p)]}

    @app.post("/api/batch/items")
    async def upload_items(file: UploadFile = File(...), name: str = Form("")):
        stem = Path(name or file.filename or "items.csv").name
        if not stem.lower().endswith(".csv") or not NAME.match(stem):
            raise UiError("batch.bad_csv_name", 400, name=stem)
        target = ws.resolve(f"{ITEMS}/{stem}")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = await file.read(20_000_000)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        return {"items": target.relative_to(ws.root).as_posix()}

    @app.post("/api/batch/check")
    def batch_check(req: BatchRequest, request: Request):
        text, error, _ = _checked(ws, req, lang_of(request))
        return {"yaml": text, "error": error}

    @app.post("/api/batch/start")
    def batch_start(req: BatchRequest, request: Request):
        text, error, out = _checked(ws, req, lang_of(request))
        if error:
            return {"error": error}
        config = ws.resolve(f"configs/batch-{Path(out).name}-{stamp()}.yaml")
        config.write_text(text, encoding="utf-8")
        rel = config.relative_to(ws.root).as_posix()
        extra = {"config": rel, "out": out}
        return {"job": jobs.submit("batch", cli("batch", rel), f"batch {Path(out).name}", extra), "error": ""}

    @app.get("/api/batch/{job_id}")
    def batch_detail(job_id: str):
        try:
            job = jobs.read(job_id)
        except KeyError as exc:
            raise UiError("ui.no_job", 404, id=job_id) from exc
        if job["kind"] != "batch":
            raise UiError("ui.no_job", 404, id=job_id)
        return {"job": job, "log": jobs.log_tail(job_id), **batch_result(ws, job)}


def job_text(ws: Workspace, req: BatchRequest) -> tuple[str, str]:
    """(job YAML, output folder relative to the workspace): every path confined to the workspace and written
    relative to configs/ (where the job file lives: the batch CLI reads its paths from the file's folder)."""
    if not req.prompt.strip():
        raise UiError("ui.no_prompt", 400)
    if not req.items.strip():
        raise UiError("batch.no_items", 400)
    name = req.output.strip() or "catalogue"
    if not NAME.match(name):
        raise UiError("batch.bad_output", 400, name=name)
    loras = {}
    for pick in req.loras:
        if not ws.resolve(pick.path).is_relative_to(ws.root / "loras"):
            raise UiError("ui.lora_outside", 400, path=pick.path)
        loras[f"../{ws.relative(pick.path)}"] = pick.weight
    out = f"outputs/{name}"
    ws.resolve(out)
    job = {
        "base_model": f"../{ws.relative(req.model)}",
        "items": f"../{ws.relative(req.items)}",
        "id_column": "id",
        "prompt": " ".join(line.strip() for line in req.prompt.splitlines() if line.strip()),
        "negative_prompt": req.negative,
        "loras": loras,
        "images_per_item": req.images_per_item,
        "seed": req.seed,
        "width": req.width,
        "height": req.height,
        "steps": req.steps,
        "cfg": req.cfg,
        "sampler": req.sampler,
        "batch_size": req.batch_size,
        "output_dir": f"../{out}",
    }
    if req.vae:  # right after base_model, as a person would write it
        job = {"base_model": job.pop("base_model"), "vae": f"../{ws.relative(req.vae)}", **job}
    head = "# Made by the web UI's batch page; run again to resume: lora-scripts batch THIS_FILE\n"
    return head + yaml.safe_dump(job, allow_unicode=True, sort_keys=False), out


def _checked(ws: Workspace, req: BatchRequest, lang: str) -> tuple[str, str, str]:
    """(YAML, error sentence in `lang` or '', output folder): the job file checked by the batch package
    (keys, sizes, sampler, the CSV and every {column} of the template) before anything starts."""
    from ..batch.config import load_job
    from ..batch.items import check_columns, read_items

    try:
        text, out = job_text(ws, req)
    except WorkspaceError as exc:
        return "", exc.text(lang), ""
    except UiError as exc:
        return "", t(exc.key, lang, **exc.fields), ""
    probe = ws.resolve(f"configs/.batch-check-{stamp()}.yaml")
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(text, encoding="utf-8")
    try:
        job = load_job(probe)
        _items, columns = read_items(job.items, job.id_column)
        check_columns(job, columns)
    except LoraScriptsError as exc:
        return text, cli_sentence(str(exc).replace(str(probe), "the job file"), lang), out
    finally:
        probe.unlink(missing_ok=True)
    return text, "", out


def cli_sentence(sentence: str, lang: str) -> str:
    """The batch CLI's sentence in `lang` where the page has the words, else the sentence itself."""
    for pattern, key in KNOWN:
        found = pattern.search(sentence)
        if found:
            return t(key, lang, **found.groupdict())
    return sentence


def batch_result(ws: Workspace, job: dict) -> dict:
    """The bar (this run's batch events), the contact sheet, the first images and the failed rows."""
    folder = ws.resolve(job["out"])
    since, until = (job.get("started") or 0) - 1, (job.get("finished") or float("inf")) + 1
    events = [e for e in read_progress(folder / PROGRESS_FILE) if since <= e.get("time", 0) <= until]
    counted = [e for e in events if "total" in e]
    last = counted[-1] if counted else {}
    bar = {
        "done": last.get("done", 0),
        "total": last.get("total"),
        "eta_s": last.get("eta_s") if job["status"] == RUNNING else None,
    }
    rows = _rows(folder / "index.csv")
    sheet = folder / "index.html"
    return {
        "bar": bar,
        "sheet": f"/files/{job['out']}/index.html" if sheet.is_file() else None,
        "index_rows": len(rows),
        "thumbs": [
            {"url": f"/files/{job['out']}/{r['file']}", "id": r["id"], "n": r["n"], "prompt": r["prompt"]}
            for r in rows[:8]
            if _inside(ws, folder / r["file"])
        ],
        "failed": _rows(folder / "failed.csv")[:50],
    }


def _rows(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def _inside(ws: Workspace, path: Path) -> bool:
    try:
        ws.resolve(path)
    except WorkspaceError:
        return False
    return True
