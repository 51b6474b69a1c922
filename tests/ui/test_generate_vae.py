"""The Generate page's VAE picker: VAEs in the workspace's models/VAE (WebUI's place for them) are offered,
the picked one decodes the images (named in each PNG's parameters, as WebUI does) and travels to the batch
job file; the base model's own VAE stays the default."""

from __future__ import annotations

import numpy as np
from PIL import Image
from safetensors.torch import load_file, save_file
from uihelp import wait_job

from lora_scripts.models.demo_base import demo_base_files


def _webui_vae(path) -> None:
    """The demo base's VAE with a retrained decoder (as vae-ft-mse is), in WebUI's models/VAE layout: LDM
    names without the checkpoint's first_stage_model. prefix."""
    weights = load_file(demo_base_files()["single_file"])
    prefix = "first_stage_model."
    vae = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
    vae["decoder.conv_out.bias"] = vae["decoder.conv_out.bias"] + 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(vae, path)


def _draw(client, workspace, **extra) -> Image.Image:
    request = {
        "model": "models/demo-base.safetensors",
        "prompt": "neon style, a phone",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 3,
        **extra,
    }
    job = client.post("/api/generate", json=request).json()["job"]
    done = wait_job(client, job["id"], timeout=180)
    assert done["job"]["status"] == "done", done["log"]
    (image,) = (workspace.root / job["out"]).glob("*.png")
    return Image.open(image)


def test_a_vae_from_models_vae_decodes_the_images_and_goes_into_the_batch_job(client, workspace):
    client.post("/api/models/demo")
    assert client.get("/api/workspace").json()["vaes"] == []
    _webui_vae(workspace.root / "models/VAE/neon-vae.safetensors")
    (workspace.root / "models/VAE/notes.txt").write_text("not a VAE", encoding="utf-8")
    listing = client.get("/api/workspace").json()
    assert listing["vaes"] == ["models/VAE/neon-vae.safetensors"]
    assert listing["models"] == ["models/demo-base.safetensors"]  # the VAE folder is not a base model

    own = _draw(client, workspace)
    other = _draw(client, workspace, vae="models/VAE/neon-vae.safetensors")
    assert "VAE" not in own.text["parameters"]
    assert "VAE: neon-vae.safetensors" in other.text["parameters"]
    assert np.abs(np.asarray(own, dtype=int) - np.asarray(other, dtype=int)).max() > 8  # another decoder

    settings = {
        "model": "models/demo-base.safetensors",
        "vae": "models/VAE/neon-vae.safetensors",
        "prompt": "a {brand} phone",
        "items": "items/phones.csv",
        "output": "phones",
    }
    client.post("/api/batch/items", files={"file": ("phones.csv", b"id,brand\nA-1,Apple\n", "text/csv")})
    checked = client.post("/api/batch/check", json=settings).json()
    assert checked["error"] == "", checked
    assert "vae: ../models/VAE/neon-vae.safetensors" in checked["yaml"]
