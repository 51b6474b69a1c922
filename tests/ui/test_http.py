"""The UI's HTTP API in-process (FastAPI's TestClient, the real app on a real workspace): no request reads
or writes outside the workspace, uploads and caption edits, the train form's checks and its YAML."""

from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest
import yaml

SECRET = "top secret, outside the workspace"


@pytest.fixture
def outside(tmp_path):
    """A file and a folder next to the workspace (never to be read or written through the UI)."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET, encoding="utf-8")
    return folder


def _zip(*members: tuple[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(name, data)
        if link:  # a symbolic link member pointing out of the dataset
            info = zipfile.ZipInfo("link.png")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, link)
    return buffer.getvalue()


def _png(style_images) -> bytes:
    return (style_images / "000_phone.png").read_bytes()


# Each: (what is tried, how the request is made). The workspace has datasets/d with one image, a symlink
# `datasets/d/escape` -> the outside folder and `datasets/d/leak.txt` -> the secret file.
ATTEMPTS = {
    "dot-dot in a file URL": lambda c, o, p: c.get("/files/datasets/..%2F..%2Fprivate/secret.txt"),
    "encoded dot-dot": lambda c, o, p: c.get("/files/%2e%2e/%2e%2e/private/secret.txt"),
    "absolute path in a file URL": lambda c, o, p: c.get(f"/files/{o / 'secret.txt'}"),
    "encoded absolute path": lambda c, o, p: c.get("/files/%2Fetc%2Fpasswd"),
    "symlinked file inside": lambda c, o, p: c.get("/files/datasets/d/leak.txt"),
    "symlinked folder inside": lambda c, o, p: c.get("/files/datasets/d/escape/secret.txt"),
    "backslash dot-dot": lambda c, o, p: c.get("/files/..%5C..%5Cprivate%5Csecret.txt"),
    "windows drive": lambda c, o, p: c.get("/files/C:%5CWindows%5Cwin.ini"),
    "NUL byte": lambda c, o, p: c.get("/files/datasets/d/a.png%00.txt"),
    "dataset outside": lambda c, o, p: c.get("/api/dataset", params={"path": str(o)}),
    "dataset via dot-dot": lambda c, o, p: c.get("/api/dataset", params={"path": "datasets/../../private"}),
    "upload into a folder outside": lambda c, o, p: c.post(
        "/api/upload", data={"dataset": str(o)}, files=[("files", ("x.png", p, "image/png"))]
    ),
    "zip-slip with dot-dot": lambda c, o, p: c.post(
        "/api/upload",
        data={"dataset": "datasets/d"},
        files=[
            ("files", ("a.zip", _zip(("ok.png", p), ("../../../private/evil.png", p)), "application/zip"))
        ],
    ),
    "zip member with an absolute path": lambda c, o, p: c.post(
        "/api/upload",
        data={"dataset": "datasets/d"},
        files=[("files", ("a.zip", _zip((f"{o}/evil.png", p)), "application/zip"))],
    ),
    "zip member that is a symlink": lambda c, o, p: c.post(
        "/api/upload",
        data={"dataset": "datasets/d"},
        files=[("files", ("a.zip", _zip(("ok.png", p), link=str(o / "secret.txt")), "application/zip"))],
    ),
    "zip into the symlinked folder": lambda c, o, p: c.post(
        "/api/upload",
        data={"dataset": "datasets/d"},
        files=[("files", ("a.zip", _zip(("escape/evil.png", p)), "application/zip"))],
    ),
    "caption of an image outside": lambda c, o, p: c.post(
        "/api/caption", json={"dataset": "datasets/d", "image": "../../../private/evil.png", "caption": "x"}
    ),
    "label a folder outside": lambda c, o, p: c.post("/api/label", json={"dataset": str(o)}),
    "doctor via dot-dot": lambda c, o, p: c.post("/api/doctor", json={"dataset": "../private"}),
    "LoRA tool writing outside": lambda c, o, p: c.post(
        "/api/tools",
        json={"tool": "resize", "inputs": ["loras/x.safetensors"], "out": str(o / "x.safetensors")},
    ),
    "generate with a model outside": lambda c, o, p: c.post(
        "/api/generate", json={"model": str(o / "secret.txt"), "prompt": "a phone"}
    ),
    "generate with a VAE outside": lambda c, o, p: c.post(
        "/api/generate", json={"model": "models/m.safetensors", "vae": str(o / "secret.txt"), "prompt": "a"}
    ),
}


@pytest.mark.parametrize("attempt", sorted(ATTEMPTS))
def test_no_request_reads_or_writes_outside_the_workspace(client, workspace, outside, style_images, attempt):
    dataset = workspace.root / "datasets" / "d"
    dataset.mkdir()
    (dataset / "a.png").write_bytes(_png(style_images))
    os.symlink(outside, dataset / "escape")
    os.symlink(outside / "secret.txt", dataset / "leak.txt")
    before = sorted(p.name for p in outside.iterdir())
    response = ATTEMPTS[attempt](client, outside, _png(style_images))
    assert 400 <= response.status_code < 500, response.text
    assert SECRET not in response.text
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing written outside
    assert not (workspace.root / "jobs").exists() or not any((workspace.root / "jobs").iterdir())
    if (
        response.headers.get("content-type", "").startswith("application/json")
        and response.status_code != 404
    ):
        error = response.json()["error"]
        assert error.endswith(".") and "Traceback" not in error
    if attempt.startswith("zip"):  # a refused archive writes nothing, not even its good members
        assert not (dataset / "ok.png").exists()


def test_a_refusal_comes_in_the_page_language(client, outside):
    zh = client.get("/api/dataset", params={"path": str(outside), "lang": "zh"}).json()["error"]
    en = client.get("/api/dataset", params={"path": str(outside)}, headers={"X-Lang": "en"}).json()["error"]
    assert "不在工作区" in zh and "is outside the workspace" in en


def test_upload_images_and_a_zip_with_chinese_names_then_edit_captions(client, workspace, style_images):
    made = client.post("/api/datasets", data={"name": "纸箱"}).json()["dataset"]
    assert made == "datasets/纸箱"
    png = _png(style_images)
    written = client.post(
        "/api/upload",
        data={"dataset": made},
        files=[
            ("files", ("手机.png", png, "image/png")),
            (
                "files",
                ("set.zip", _zip(("子文件夹/笔记本.png", png), ("__MACOSX/._x.png", b"junk")), "x/zip"),
            ),
        ],
    ).json()["written"]
    assert written == ["手机.png", "子文件夹/笔记本.png"]
    folder = workspace.root / "datasets" / "纸箱"
    assert (folder / "子文件夹" / "笔记本.png").read_bytes() == png
    # a metadata.csv written by hand: BOM, CRLF, a quoted caption with a comma, an extra column
    original = '\ufefffilename,prompt,note\r\n手机.png,"霓虹, 手机",keep me\r\nother.png,untouched,x\r\n'
    (folder / "metadata.csv").write_bytes(original.encode("utf-8"))
    ok = client.post(
        "/api/caption", json={"dataset": made, "image": "手机.png", "caption": "neon style, 手机\n"}
    )
    assert ok.json() == {"saved": True}
    expected = original.replace('"霓虹, 手机",keep me', '"neon style, 手机",keep me')
    assert (folder / "metadata.csv").read_bytes() == expected.encode("utf-8")
    client.post("/api/caption", json={"dataset": made, "image": "子文件夹/笔记本.png", "caption": "笔记本"})
    assert (folder / "metadata.csv").read_bytes() == (expected + "子文件夹/笔记本.png,笔记本,\r\n").encode(
        "utf-8"
    )
    shown = client.get("/api/dataset", params={"path": made}).json()
    assert {i["name"]: i["caption"] for i in shown["images"]} == {
        "手机.png": "neon style, 手机",
        "子文件夹/笔记本.png": "笔记本",
    }
    thumb = client.get(shown["images"][0]["url"])
    assert thumb.status_code == 200 and thumb.content == png


def test_a_file_that_is_not_an_image_is_refused_in_one_sentence(client):
    client.post("/api/datasets", data={"name": "d"})
    response = client.post(
        "/api/upload", data={"dataset": "datasets/d"}, files=[("files", ("run.sh", b"rm -rf /", "text/x-sh"))]
    )
    assert response.status_code == 400
    assert response.json()["error"] == "'run.sh' is not an image, a .zip or a caption file; it was not added."


def test_train_form_errors_are_shown_per_field_in_both_languages(client, workspace, outside):
    values = {
        "base_model": str(outside / "secret.txt"),
        "train_data_dir": "datasets/d",
        "output_name": "x",
        "learning_rate": "fast",
        "lora_rank": 0,
    }
    en = client.post("/api/train/check", json={"values": values}).json()["errors"]
    assert en["learning_rate"] == "Enter a number, such as 0.0001."
    assert en["lora_rank"] == "Must be at least 1."
    assert "is outside the workspace" in en["base_model"]
    zh = client.post("/api/train/check", json={"values": values}, headers={"X-Lang": "zh"}).json()["errors"]
    assert zh["learning_rate"] == "请填写数字，例如 0.0001。" and "不在工作区" in zh["base_model"]
    started = client.post("/api/train/start", json={"values": values}).json()
    assert started["errors"] == en and "job" not in started
    assert client.get("/api/jobs").json()["jobs"] == []


def test_resolved_yaml_with_a_preset_downloads_and_loads_back(client):
    values = {"base_model": "models/base.safetensors", "train_data_dir": "datasets/d", "output_name": "boxes"}
    checked = client.post(
        "/api/train/check", json={"values": values, "presets": ["product", "small_gpu"]}
    ).json()
    assert checked["errors"] == {}
    resolved = yaml.safe_load(checked["yaml"])
    assert resolved["output_dir"] == "loras/boxes"  # the LoRA lands in the library
    assert resolved["mixed_precision"] == "fp16" and resolved["flip_aug"] is False  # small GPU + product
    loaded = client.post(
        "/api/train/load", files={"file": ("boxes.yaml", checked["yaml"].encode(), "text/yaml")}
    )
    again = client.post("/api/train/check", json={"values": loaded.json()["values"]}).json()
    assert again["errors"] == {} and again["yaml"] == checked["yaml"]
    bad = client.post("/api/train/load", files={"file": ("x.yaml", b"- just\n- a list\n", "text/yaml")})
    assert bad.status_code == 400 and bad.json()["error"].startswith("'x.yaml' is not a settings file")


def test_form_lists_every_image_route_key_with_labels_in_the_language(client):
    form = client.get("/api/train/form", params={"lang": "zh"}).json()
    by_name = {f["name"]: f for f in form["fields"]}
    assert (
        by_name["learning_rate"]["label"] == "学习速度（学习率）"
        and by_name["learning_rate"]["group"] == "basic"
    )
    assert by_name["lora_rank"]["min"] == 1 and by_name["lr_scheduler"]["group"] == "advanced"
    assert "dataset" not in by_name  # the chat route's keys are not on the image form
    assert [p["name"] for p in form["presets"]] == ["style", "product", "character", "small_gpu", "sdxl_8gb"]
    assert form["presets"][3]["label"].startswith("小显存")


def test_advanced_fields_have_chinese_names_and_hints_and_new_keys_still_appear(client):
    from lora_scripts.ui.api_train import _words
    from lora_scripts.ui.forms import FormField

    zh = {f["name"]: f for f in client.get("/api/train/form", params={"lang": "zh"}).json()["fields"]}
    en = {f["name"]: f for f in client.get("/api/train/form", params={"lang": "en"}).json()["fields"]}
    assert zh["flip_aug"]["label"] == "左右翻转（flip_aug）" and "不对称" in zh["flip_aug"]["help"]
    assert en["flip_aug"]["label"] == "flip_aug" and en["flip_aug"]["help"].startswith("Randomly mirror")
    assert zh["learning_rate"]["help"] == "每一步学多快；0.0001 是稳妥的起点。"
    # a key added to config/ tomorrow: on the form at once, with its key and English help
    new = FormField("brand_new_key", "train", "int", 1, False, "Help from config.", "advanced", "both")
    assert _words(new, "zh") == {"label": "brand_new_key", "help": "Help from config."}


def test_a_folder_already_in_the_workspace_opens_as_a_dataset(client, workspace, style_images):
    folder = workspace.root / "shoots" / "2026 春季"
    folder.mkdir(parents=True)
    for image in sorted(style_images.glob("*.png"))[:2]:
        (folder / image.name).write_bytes(image.read_bytes())
    shown = client.get("/api/dataset", params={"path": "shoots/2026 春季"}).json()
    assert [i["name"] for i in shown["images"]] == ["000_phone.png", "001_phone.png"]
    assert all(i["caption"] is None for i in shown["images"])
    missing = client.get("/api/dataset", params={"path": "shoots/nope"})
    assert missing.status_code == 404 and missing.json()["error"].startswith("'shoots/nope' is not a folder")


@pytest.mark.parametrize(
    ("change", "en", "zh"),
    [
        ({"prompt": "  \n "}, "Write a prompt first.", "请先填写画面描述词。"),
        (
            {"width": 500},
            "Width and height must be multiples of 8, such as 512 or 768 (not 500).",
            "8 的倍数",
        ),
        ({"steps": 0}, "Steps and image count must be at least 1 (not 0).", "至少是 1"),
        (
            {"loras": [{"path": "models/x.safetensors", "weight": 1}]},
            "'models/x.safetensors' is not in the LoRA library (the loras folder of the workspace).",
            "不在 LoRA 模型库",
        ),
    ],
)
def test_generate_settings_are_checked_before_a_job_starts(client, change, en, zh):
    request = {"model": "models/base.safetensors", "prompt": "a phone", **change}
    refused = client.post("/api/generate", json=request)
    assert refused.status_code == 400 and refused.json()["error"] == en
    assert zh in client.post("/api/generate", json=request, headers={"X-Lang": "zh"}).json()["error"]
    assert client.get("/api/jobs").json()["jobs"] == []


def test_a_lora_file_that_cannot_be_read_is_said_in_the_page_language(client, workspace):
    (workspace.root / "loras").mkdir(exist_ok=True)
    (workspace.root / "loras/broken.safetensors").write_bytes(b"not a safetensors file")
    en = client.get("/api/loras", params={"lang": "en"}).json()["loras"][0]["facts"]["error"]
    zh = client.get("/api/loras", params={"lang": "zh"}).json()["loras"][0]["facts"]["error"]
    assert "broken.safetensors" in en and not any("\u4e00" <= ch <= "\u9fff" for ch in en)
    assert zh == "这个文件读不出来，可能已损坏，或不是 LoRA 文件。英文原因：" + en
