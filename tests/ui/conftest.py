"""The web UI's test world: a workspace, the demo's style images, the app in-process (FastAPI's TestClient)
and the real `lora-scripts ui` process (helpers in uihelp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the web UI's extra is not installed: pip install -e .[ui]")

from uihelp import UiProcess  # noqa: E402

from lora_scripts.ui.server import UiSettings, create_app  # noqa: E402
from lora_scripts.ui.workspace import Workspace  # noqa: E402


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
    from fastapi.testclient import TestClient

    with TestClient(create_app(UiSettings(workspace, "en"))) as test_client:
        yield test_client


@pytest.fixture
def ui_process():
    """Start `lora-scripts ui` processes; each is stopped after the test."""
    started: list[UiProcess] = []

    def start(workspace: Path, *args: str, **kwargs) -> UiProcess:
        ui = UiProcess(workspace, *args, **kwargs)
        started.append(ui)
        return ui

    yield start
    for ui in started:
        ui.kill()
