"""The batch page over HTTP (the real app, the real `lora-scripts batch` process on the demo base model):
generate-page settings + an uploaded 3-row CSV -> a job file -> index.csv rows, the contact sheet and
thumbnails; a CSV missing a template column is the CLI's sentence in the page's language before anything
starts; an items CSV outside the workspace is refused."""

from __future__ import annotations

import csv

import pytest
from uihelp import wait_job

ITEMS = "id,brand,colour\nA-1,Apple,black\nB-2,Huawei,white\nC-3,Xiaomi,green\nD-4,Oppo,<lora:x:1>\n"


def _settings(**extra) -> dict:
    """What the generate page sends (model, prompt, sampler/steps/CFG/size/seed) plus the batch form."""
    return {
        "model": "models/demo-base.safetensors",
        "loras": [],
        "prompt": "a {colour} phone by {brand}",
        "negative": "blurry",
        "sampler": "Euler a",
        "steps": 2,
        "cfg": 4,
        "seed": 7,
        "width": 64,
        "height": 64,
        "items": "items/phones.csv",
        "images_per_item": 1,
        "batch_size": 3,
        "output": "phones",
        **extra,
    }


def test_a_batch_job_from_the_generate_settings_makes_the_index_and_contact_sheet(client, workspace):
    client.post("/api/models/demo")
    up = client.post("/api/batch/items", files={"file": ("phones.csv", ITEMS.encode(), "text/csv")})
    assert up.json() == {"items": "items/phones.csv"}
    assert client.get("/api/batch/items").json() == {"items": ["items/phones.csv"]}
    # a template column the table lacks: the batch CLI's check, said in Chinese, and nothing started
    bad = client.post("/api/batch/start", json=_settings(prompt="a {color} phone"), headers={"X-Lang": "zh"})
    assert bad.json()["error"].startswith("描述词模板里用了“color”这一列，但表格里没有这一列")
    english = client.post("/api/batch/check", json=_settings(prompt="a {color} phone")).json()
    assert "'color'" in english["error"] and "base_model: ../models/demo-base.safetensors" in english["yaml"]
    assert client.get("/api/jobs").json()["jobs"] == []
    job = client.post("/api/batch/start", json=_settings()).json()["job"]
    assert job["command"][-2:] == ["batch", job["config"]]
    detail = wait_job(client, job["id"], timeout=240)
    assert detail["job"]["status"] == "done", detail["log"]
    shown = client.get(f"/api/batch/{job['id']}").json()
    with open(workspace.root / "outputs/phones/index.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["prompt"]) for r in rows] == [
        ("A-1", "a black phone by Apple"),
        ("B-2", "a white phone by Huawei"),
        ("C-3", "a green phone by Xiaomi"),
    ]
    assert shown["index_rows"] == 3  # the 4th row holds a LoRA tag: failed.csv, with the CLI's reason
    assert [(r["id"], r["n"]) for r in shown["failed"]] == [("D-4", "0")]
    assert "'<'" in shown["failed"][0]["reason"]
    assert shown["bar"] == {"done": 3, "total": 3, "eta_s": None}
    assert shown["sheet"] == "/files/outputs/phones/index.html"
    assert "A-1 #0" in client.get(shown["sheet"]).text
    assert [client.get(x["url"]).headers["content-type"] for x in shown["thumbs"]] == ["image/png"] * 3
    listed = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == job["id"])
    assert listed["result"] == shown["sheet"] and listed["bar"]["done"] == 3
    # resume = the same job file again: every image is in index.csv, so none is made again
    again = client.post(f"/api/jobs/{job['id']}/resume").json()["job"]
    assert again["command"] == job["command"] and again["out"] == "outputs/phones"
    assert wait_job(client, again["id"], timeout=120)["job"]["status"] == "done"
    with open(workspace.root / "outputs/phones/index.csv", encoding="utf-8") as handle:
        assert [r["sha256"] for r in csv.DictReader(handle)] == [r["sha256"] for r in rows]


@pytest.mark.parametrize(
    "items", ["../outside.csv", "/etc/passwd", "items/../../outside.csv", "items/link.csv"]
)
def test_an_items_csv_outside_the_workspace_is_refused(client, workspace, items):
    outside = workspace.root.parent / "outside.csv"
    outside.write_text(ITEMS, encoding="utf-8")
    (workspace.root / "items").mkdir()
    (workspace.root / "items/link.csv").symlink_to(outside)
    for path in ("/api/batch/check", "/api/batch/start"):
        error = client.post(path, json=_settings(items=items)).json()["error"]
        assert "outside the workspace" in error
    assert not (workspace.root / "jobs").exists() or not any((workspace.root / "jobs").iterdir())
    assert client.get("/api/batch/items").json() == {"items": []}  # the link is not offered either
    upload = client.post("/api/batch/items", files={"file": ("../../evil.csv", b"id\n1\n", "text/csv")})
    assert upload.status_code == 400 or upload.json() == {"items": "items/evil.csv"}
    assert not (workspace.root.parent / "evil.csv").exists()
