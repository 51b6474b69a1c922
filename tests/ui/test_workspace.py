"""The workspace confinement on real files and real symlinks: every way out is refused, the inside is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lora_scripts.errors import LoraScriptsError
from lora_scripts.ui.workspace import Workspace, WorkspaceError


@pytest.fixture()
def ws(tmp_path) -> Workspace:
    workspace = Workspace(tmp_path / "workspace").create()
    (workspace.root / "datasets" / "猫").mkdir()
    (workspace.root / "datasets" / "猫" / "a.png").write_bytes(b"png")
    (tmp_path / "secret.txt").write_text("not yours", encoding="utf-8")
    return workspace


def test_paths_inside_resolve_to_absolute_paths(ws):
    assert ws.resolve("datasets/猫/a.png") == ws.root / "datasets" / "猫" / "a.png"
    assert ws.resolve(ws.root / "configs") == ws.root / "configs"
    assert ws.resolve("datasets/猫/../../configs/new.yaml") == ws.root / "configs" / "new.yaml"  # stays in
    assert ws.resolve(".") == ws.root
    assert ws.relative("datasets\\猫\\a.png") == "datasets/猫/a.png"  # typed the Windows way


OUTSIDE = [
    "..",
    "../secret.txt",
    "datasets/../../secret.txt",
    "datasets/猫/../../../../../../../../etc/passwd",
    "..\\secret.txt",
    "datasets\\..\\..\\secret.txt",
    "/etc/passwd",
    "/",
]


@pytest.mark.parametrize("path", OUTSIDE)
def test_ways_out_are_refused(ws, path):
    with pytest.raises(WorkspaceError) as info:
        ws.resolve(path)
    assert info.value.key == "workspace.outside"
    assert str(ws.root) in str(info.value)


def test_an_absolute_path_elsewhere_is_refused_even_when_it_exists(ws, tmp_path):
    with pytest.raises(WorkspaceError):
        ws.resolve(tmp_path / "secret.txt")
    with pytest.raises(WorkspaceError):  # a sibling whose name starts like the workspace's
        (tmp_path / "workspace2").mkdir()
        ws.resolve(tmp_path / "workspace2")


def test_symlinks_pointing_out_are_refused(ws, tmp_path):
    links = ws.root / "datasets"
    (links / "passwd").symlink_to("/etc/passwd")
    (links / "up").symlink_to(tmp_path)  # a folder link: everything under it is outside
    (links / "relative").symlink_to(Path("..") / ".." / "secret.txt")
    for path in ("datasets/passwd", "datasets/up/secret.txt", "datasets/up", "datasets/relative"):
        with pytest.raises(WorkspaceError):
            ws.resolve(path)


def test_a_symlink_that_stays_inside_is_allowed(ws):
    (ws.root / "loras" / "latest").symlink_to(ws.root / "datasets" / "猫")
    assert ws.resolve("loras/latest/a.png") == ws.root / "datasets" / "猫" / "a.png"


def test_a_workspace_that_is_itself_a_symlink_works(tmp_path, ws):
    (tmp_path / "link").symlink_to(ws.root)
    assert Workspace(tmp_path / "link").resolve("datasets/猫") == ws.root / "datasets" / "猫"


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("datasets/a\0.png", "workspace.nul"),
        ("\0", "workspace.nul"),
        ("", "workspace.empty"),
        ("   ", "workspace.empty"),
        ("C:\\Windows\\system.ini", "workspace.drive"),
        ("C:/Windows", "workspace.drive"),
        ("c:secret.txt", "workspace.drive"),
        ("\\\\server\\share\\file", "workspace.drive"),
        ("//server/share/file", "workspace.drive"),
    ],
)
def test_malformed_paths_are_refused(ws, path, key):
    with pytest.raises(WorkspaceError) as info:
        ws.resolve(path)
    assert info.value.key == key


def test_the_error_is_a_project_error_in_english_and_chinese(ws):
    with pytest.raises(LoraScriptsError) as info:
        ws.resolve("../secret.txt")
    err = info.value
    assert isinstance(err, WorkspaceError)
    assert err.exit_code == 2
    assert err.hint == "Choose a file or folder inside the workspace."  # what to do
    assert str(err) == f"The path '../secret.txt' is outside the workspace {ws.root}. {err.hint}"
    assert err.text("zh") == f"“../secret.txt”不在工作区 {ws.root} 里面。请选择工作区里的文件或文件夹。"
    assert err.text("zh-CN") == err.text("zh")


def test_a_file_as_workspace_is_refused(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(WorkspaceError) as info:
        Workspace(tmp_path / "file")
    assert info.value.key == "workspace.not_folder"


def test_listing_names_what_each_area_holds_and_nothing_outside(ws, tmp_path):
    root = ws.root
    (root / "datasets" / "产品").mkdir()
    (root / "datasets" / ".hidden").mkdir()
    (root / "datasets" / "notes.txt").write_text("a file, not a dataset", encoding="utf-8")
    (root / "datasets" / "escape").symlink_to(tmp_path)
    (root / "configs" / "style.yaml").write_text("epochs: 1\n", encoding="utf-8")
    (root / "configs" / "old").mkdir()
    (root / "configs" / "old" / "a.yml").write_text("epochs: 1\n", encoding="utf-8")
    (root / "configs" / "readme.md").write_text("#", encoding="utf-8")
    (root / "loras" / "cat.safetensors").write_bytes(b"x")
    (root / "loras" / "stolen.safetensors").symlink_to(tmp_path / "secret.txt")
    (root / "outputs" / "run1").mkdir()
    assert ws.listing() == {
        "datasets": ["datasets/产品", "datasets/猫"],
        "configs": ["configs/old/a.yml", "configs/style.yaml"],
        "loras": ["loras/cat.safetensors"],
        "outputs": ["outputs/run1"],
    }


def test_listing_of_a_new_workspace_is_empty(tmp_path):
    assert Workspace(tmp_path / "none").listing() == {
        a: [] for a in ("datasets", "configs", "loras", "outputs")
    }
    assert not (tmp_path / "none").exists()  # listing creates nothing
    assert sorted(os.listdir(Workspace(tmp_path / "new").create().root)) == [
        "configs",
        "datasets",
        "loras",
        "outputs",
    ]
