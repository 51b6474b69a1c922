"""The web UI's test world: a workspace, the demo's style images, the app in-process (FastAPI's TestClient)
and the real `lora-scripts ui` process (helpers in uihelp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from uihelp import UiProcess

from lora_scripts.ui.workspace import Workspace

EXTRA = "the web UI's extra is not installed: pip install -e .[ui] (scripts/setup.sh does)"


@pytest.fixture
def style_images(tmp_path_factory) -> Path:
    """4 neon images (2 phones, 2 laptops) with a metadata.csv, outside any workspace (the user's disk)."""
    from lora_scripts.demo import write_style_images

    folder = tmp_path_factory.mktemp("images")
    write_style_images(folder, ("phone", "laptop"), 2, 0)
    return folder


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "workspace").create()


@pytest.fixture
def client(workspace):
    pytest.importorskip("fastapi", reason=EXTRA)
    from fastapi.testclient import TestClient

    from lora_scripts.ui.server import UiSettings, create_app

    with TestClient(create_app(UiSettings(workspace, "en"))) as test_client:
        yield test_client


@pytest.fixture
def ui_process():
    """Start `lora-scripts ui` processes; each is stopped after the test."""
    started: list[UiProcess] = []

    pytest.importorskip("uvicorn", reason=EXTRA)

    def start(workspace: Path, *args: str, **kwargs) -> UiProcess:
        ui = UiProcess(workspace, *args, **kwargs)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.kill()
