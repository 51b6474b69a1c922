"""The web UI's HTTP server (FastAPI): the page, the workspace's files (confined), and the API the page
calls. FastAPI + a small static page (no build step, no CDN: the machines it runs on are often offline)
because it shows exactly which paths are served, and a real browser drives it in the tests.

Every request that names a path goes through Workspace.resolve; a refusal is one sentence in the user's
language (JSON `{"error": ...}`, HTTP 400/403/404), never a traceback and never the file.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import LoraScriptsError
from ..language import LANGS, normalise_lang
from .i18n import MESSAGES, t
from .jobs import JobStore
from .workspace import Workspace, WorkspaceError

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
# Served inline: pictures and text; anything else is a download. HTML (reports) gets a sandbox: no script
# of a served file runs with the UI's origin.
INLINE = {
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".bmp",
    ".txt",
    ".csv",
    ".json",
    ".jsonl",
    ".yaml",
    ".yml",
    ".log",
}


@dataclass
class UiSettings:
    workspace: Workspace
    lang: str = "en"
    auth: tuple[str, str] | None = None  # (user, password) for HTTP basic auth


class UiError(Exception):
    """A refusal for the page: an i18n key and its fields, with the HTTP status."""

    def __init__(self, key: str, status: int = 400, **fields: object):
        super().__init__(key)
        self.key, self.status, self.fields = key, status, fields


def request_lang(request: Request, default: str) -> str:
    for value in (request.query_params.get("lang"), request.headers.get("x-lang")):
        if value:
            try:
                return normalise_lang(value)
            except ValueError:
                continue
    return default


def create_app(settings: UiSettings, start_jobs: bool = True) -> FastAPI:
    ws = settings.workspace.create()
    (ws.root / "models").mkdir(exist_ok=True)
    jobs = JobStore(ws.root / "jobs", ws.root)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_jobs:
            jobs.start()
        yield
        jobs.close()

    app = FastAPI(title="lora-scripts", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings, app.state.ws, app.state.jobs = settings, ws, jobs

    @app.middleware("http")
    async def basic_auth(request: Request, call_next):
        if settings.auth is not None and not _authorised(request, settings.auth):
            return Response(
                t("ui.auth_needed", request_lang(request, settings.lang)).encode("utf-8"),
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="lora-scripts", charset="UTF-8"'},
                media_type="text/plain; charset=utf-8",
            )
        return await call_next(request)

    @app.exception_handler(WorkspaceError)
    async def refused(request: Request, exc: WorkspaceError):
        return JSONResponse({"error": exc.text(request_lang(request, settings.lang))}, status_code=403)

    @app.exception_handler(UiError)
    async def ui_error(request: Request, exc: UiError):
        text = t(exc.key, request_lang(request, settings.lang), **exc.fields)
        return JSONResponse({"error": text}, status_code=exc.status)

    @app.exception_handler(LoraScriptsError)
    async def project_error(request: Request, exc: LoraScriptsError):
        text = t("ui.error", request_lang(request, settings.lang), detail=str(exc))
        return JSONResponse({"error": text}, status_code=400)

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/i18n")
    def messages(request: Request):
        lang = request_lang(request, settings.lang)
        return {"lang": lang, "langs": list(LANGS), "messages": {k: v[lang] for k, v in MESSAGES.items()}}

    @app.get("/files/{path:path}")
    def workspace_file(path: str, download: bool = False):
        """A file of the workspace (thumbnails, samples, reports, LoRAs, configs): confined to it."""
        target = ws.resolve(path)
        if not target.is_file():
            raise UiError("ui.not_found", 404, path=path)
        suffix = target.suffix.lower()
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        if suffix in (".html", ".htm"):
            headers["Content-Security-Policy"] = "sandbox"
        elif download or suffix not in INLINE:
            return FileResponse(target, filename=target.name, headers=headers)
        return FileResponse(target, headers=headers)

    from . import api_batch, api_data, api_library, api_train

    for api in (api_data, api_train, api_library, api_batch):
        api.register(app, ws, jobs)

    return app


def _authorised(request: Request, auth: tuple[str, str]) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    ok_user = secrets.compare_digest(user.encode(), auth[0].encode())
    ok_password = secrets.compare_digest(password.encode(), auth[1].encode())
    return ok_user and ok_password
