"""The generate page and the LoRA library: `lora-scripts generate` and `lora-scripts lora ...` as jobs, the
gallery of what they made (with each PNG's parameters) and `lora inspect`'s facts of every LoRA in
`workspace/loras`."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, Request
from pydantic import BaseModel

from . import library_text
from .api_train import stamp
from .jobs import JobStore, cli
from .server import UiError, request_lang
from .workspace import Workspace


class LoraPick(BaseModel):
    path: str
    weight: float = 1.0


class DrawSettings(BaseModel):
    """What the Generate page sends, and what "send to batch" carries over to the Batch tab."""

    model: str
    vae: str = ""  # a workspace path (models/VAE/...); "" decodes with the base model's own VAE
    loras: list[LoraPick] = []
    prompt: str = ""
    negative: str = ""
    sampler: str = "Euler a"
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    width: int = 512
    height: int = 512


class GenerateRequest(DrawSettings):
    prompt: str = ""  # one prompt per line: several lines make the rows of the grid
    seed: int = 1
    count: int = 1
    grid_weights: str = ""  # "0,0.5,1": columns of the first LoRA's weight
    grid_seeds: str = ""  # "1,2,3": exact seeds (replaces seed/count)


class ToolRequest(BaseModel):
    tool: str  # resize, merge-loras, merge, extract
    inputs: list[str] = []  # workspace paths (LoRAs with :weight for the merges; tuned+base for extract)
    base: str = ""
    out: str = ""
    rank: int | None = None


def register(app: FastAPI, ws: Workspace, jobs: JobStore) -> None:
    @app.post("/api/generate")
    def generate(req: GenerateRequest):
        return {"job": jobs.submit("generate", *_generate_command(ws, req))}

    @app.get("/api/gallery")
    def gallery():
        return {"images": _gallery(ws)}

    @app.get("/api/loras")
    def loras(request: Request):
        zh = request_lang(request, app.state.settings.lang) == "zh"
        return {"loras": [library_text.localise(item, zh) for item in _library(ws)]}

    @app.post("/api/tools")
    def tool(req: ToolRequest):
        command, title = _tool_command(ws, req)
        return {"job": jobs.submit("tool", command, title, {"out": req.out})}


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
    out = f"outputs/gen-{stamp()}"
    out_dir = ws.resolve(out)
    args = ["generate", "-m", model, "-l", "loras", "-o", out, "-n", req.negative]
    args += ["--sampler", req.sampler, "--steps", str(req.steps), "--cfg", f"{req.cfg:g}"]
    args += ["-W", str(req.width), "-H", str(req.height)]
    if req.vae:
        args += ["--vae", ws.relative(req.vae)]
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
