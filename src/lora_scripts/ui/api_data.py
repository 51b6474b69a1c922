"""The dataset page's API: list and create datasets, upload images or a zip, edit captions, and the
auto-label and doctor jobs (the `label` and `doctor` CLI commands)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from pydantic import BaseModel

from ..data.images import IMAGE_EXTENSIONS
from ..doctor.text_zh import CHECK_ZH, finding_zh
from . import datasets
from .jobs import JobStore, cli
from .server import UiError, request_lang
from .workspace import Workspace

DOCTOR_JSON = "doctor_report.json"
LABEL_BACKENDS = ("filename", "folder", "classify", "caption", "tags")
MODEL_SUFFIXES = (".safetensors",)


class CaptionEdit(BaseModel):
    dataset: str
    image: str
    caption: str


class LabelRequest(BaseModel):
    dataset: str
    backend: str = "filename"
    model: str = ""
    trigger: str = ""
    overwrite: bool = False


class DoctorRequest(BaseModel):
    dataset: str
    resolution: int = 512
    trigger: str = ""


def dataset_path(ws: Workspace, path: str) -> Path:
    """A dataset folder named by its workspace path (`datasets/shoes`, or any folder inside)."""
    folder = ws.resolve(path)
    if not folder.is_dir():
        raise UiError("ui.not_a_folder", 404, path=path)
    return folder


def models(ws: Workspace) -> list[str]:
    """Base models in `workspace/models`: single files and diffusers folders."""
    return _weights_in(ws, ws.root / "models", "model_index.json")


def vaes(ws: Workspace) -> list[str]:
    """VAEs in `workspace/models/VAE` (WebUI's place for them): single files and diffusers VAE folders."""
    return _weights_in(ws, ws.root / "models" / "VAE", "config.json")


def _weights_in(ws: Workspace, folder: Path, folder_marker: str) -> list[str]:
    """Workspace paths of the .safetensors files in ``folder`` and of its subfolders holding
    ``folder_marker`` (a diffusers folder), hidden entries and those resolving outside left out."""
    found = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if entry.name.startswith("."):
            continue
        single = entry.is_file() and entry.suffix.lower() in MODEL_SUFFIXES
        if (single or (entry / folder_marker).is_file()) and ws._inside(entry):
            found.append(entry.relative_to(ws.root).as_posix())
    return found


def register(app: FastAPI, ws: Workspace, jobs: JobStore) -> None:
    @app.get("/api/workspace")
    def workspace():
        listing = ws.listing()
        return {"root": str(ws.root), **listing, "models": models(ws), "vaes": vaes(ws)}

    @app.post("/api/models/demo")
    def add_demo_model():
        """Copy the built-in demo base model (assets/demo-base) into workspace/models to try the route."""
        from ..models.demo_base import demo_base_files

        source = demo_base_files()["single_file"]
        target = ws.root / "models" / source.name
        if not target.exists():
            shutil.copyfile(source, target)
        return {"model": target.relative_to(ws.root).as_posix()}

    @app.post("/api/datasets")
    def create_dataset(name: str = Form(...)):
        folder = datasets.dataset_folder(ws, name)
        return {"dataset": folder.relative_to(ws.root).as_posix()}

    @app.get("/api/dataset")
    def show_dataset(path: str, request: Request):
        folder = dataset_path(ws, path)
        try:
            captions = datasets.read_captions(folder)
        except Exception as exc:  # a broken metadata.csv: its sentence, the images still shown
            captions, problem = {}, str(exc)
        else:
            problem = ""
        report = folder / DOCTOR_JSON
        findings = json.loads(report.read_text(encoding="utf-8"))["findings"] if report.is_file() else []
        zh = request_lang(request, app.state.settings.lang) == "zh"
        for finding in findings:  # the check's title and its sentence in the page's language
            finding["title"] = CHECK_ZH.get(finding["check"], finding["check"]) if zh else finding["check"]
            if zh:
                code = finding.get("code", finding["check"])
                finding["message"] = finding_zh(code, finding.get("params", {}), finding["message"])
        rel = folder.relative_to(ws.root).as_posix()
        images = [
            {"name": name, "url": f"/files/{rel}/{name}", "caption": captions.get(name)}
            for name in datasets.images_of(folder)
        ]
        return {"dataset": rel, "images": images, "findings": findings, "problem": problem}

    @app.post("/api/upload")
    async def upload(dataset: str = Form(...), files: list[UploadFile] = File(...)):
        folder = dataset_path(ws, dataset)
        written: list[str] = []
        for upload in files:
            data = await upload.read(datasets.MAX_UPLOAD_BYTES + 1)
            if len(data) > datasets.MAX_UPLOAD_BYTES:
                raise UiError("ui.too_big", 413, name=upload.filename or "")
            try:
                written += datasets.save_upload(ws, folder, upload.filename or "", data)
            except ValueError as exc:
                raise UiError("ui.not_image", 400, name=upload.filename or "") from exc
        return {"written": written}

    @app.post("/api/caption")
    def caption(edit: CaptionEdit):
        folder = dataset_path(ws, edit.dataset)
        image = ws.resolve(folder / edit.image)
        if not image.is_file() or image.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UiError("ui.not_found", 404, path=edit.image)
        datasets.set_caption(folder, image.relative_to(folder).as_posix(), edit.caption)
        return {"saved": True}

    @app.post("/api/label")
    def label(req: LabelRequest):
        folder = dataset_path(ws, req.dataset)
        if req.backend not in LABEL_BACKENDS:
            raise UiError("ui.bad_choice", 400, value=req.backend, choices=", ".join(LABEL_BACKENDS))
        args = ["label", "--input", str(folder), "--backend", req.backend]
        if req.model:
            args += ["--model", str(ws.resolve(req.model))]
        if req.trigger.strip():
            args += ["--trigger", req.trigger.strip()]
        if req.overwrite:
            args.append("--overwrite")
        rel = folder.relative_to(ws.root).as_posix()
        return jobs.submit("label", cli(*args), f"label {rel}", {"dataset": rel})

    @app.post("/api/doctor")
    def doctor(req: DoctorRequest, request: Request):
        folder = dataset_path(ws, req.dataset)
        args = [
            "doctor",
            str(folder),
            "--resolution",
            str(req.resolution),
            "--json",
            str(folder / DOCTOR_JSON),
            "--lang",  # the HTML report in the page's language
            request_lang(request, app.state.settings.lang),
        ]
        if req.trigger.strip():
            args += ["--trigger", req.trigger.strip()]
        rel = folder.relative_to(ws.root).as_posix()
        return jobs.submit(
            "doctor", cli(*args), f"doctor {rel}", {"dataset": rel, "report": f"{rel}/doctor_report.html"}
        )
