"""PNG files as WebUI writes them: the `parameters` text chunk that WebUI's PNG Info tab reads back."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..errors import OutputError
from ..models.render import RenderRequest
from .atomic import replacing


def parameters_text(
    request: RenderRequest,
    text: str | None = None,
    model: str | None = None,
    lora_hashes: dict | None = None,
    vae: str | None = None,
) -> str:
    """Prompt (as written, with its tags), negative prompt, then WebUI's `Key: value` settings line."""
    lines = [text if text is not None else request.prompt]
    if request.negative_prompt:
        lines.append(f"Negative prompt: {request.negative_prompt}")
    fields = {
        "Steps": request.steps,
        "Sampler": request.sampler,
        "CFG scale": f"{request.cfg_scale:g}",
        "Seed": request.seed,
        "Size": f"{request.width}x{request.height}",
    }
    if model:
        fields["Model"] = model
    if vae:  # WebUI names a VAE chosen instead of the checkpoint's
        fields["VAE"] = vae
    if lora_hashes:
        fields["Lora hashes"] = '"' + ", ".join(f"{n}: {h}" for n, h in lora_hashes.items()) + '"'
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items()))
    return "\n".join(lines)


def save_png(image: Image.Image, path: Path, parameters: str | None = None) -> Path:
    """Write a PNG completely or not at all (temp file + rename), with a `parameters` text chunk."""
    info = PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    try:
        with replacing(path) as tmp:
            image.save(tmp, format="PNG", pnginfo=info)
    except OSError as exc:
        raise OutputError(
            f"Could not write '{path}': {exc.strerror or exc}", "Check the disk and folder"
        ) from exc
    return path
