"""Progress events of the stages that are not training (label, doctor, generate, tools) and what the Jobs
page makes of them: a bar (done / total / ETA) and, for a failed job, why, in the page's language."""

from __future__ import annotations

import pytest
from uihelp import wait_job

from lora_scripts.errors import DataError
from lora_scripts.progress import PROGRESS_ENV, read_progress, stage_progress
from lora_scripts.ui.job_progress import failure, stage_bar

pytest.importorskip("httpx", reason="the web UI's extra is not installed: pip install -e .[ui]")


def test_a_stage_writes_start_progress_and_end_with_the_error_family(tmp_path, monkeypatch):
    path = tmp_path / "job" / "progress.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    with pytest.raises(DataError), stage_progress("label") as progress:
        progress.begin(3)
        progress.advance(3)
        raise DataError("Image 'a.png' is empty", "Delete it")
    events = [{k: v for k, v in e.items() if k not in ("time", "eta_s")} for e in read_progress(path)]
    assert events == [
        {"event": "start", "stage": "label", "done": 0, "total": 3},
        {"event": "progress", "done": 3, "total": 3},
        {
            "event": "end",
            "stage": "label",
            "done": 3,
            "total": 3,
            "state": "failed",
            "error": "DataError",
            "message": "Image 'a.png' is empty. Delete it.",
        },
    ]


def test_without_the_variable_a_stage_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with stage_progress("doctor") as progress:
        progress.begin(2)
        progress.advance(2)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_is_said_by_its_error_family_in_either_language():
    job = {"kind": "label", "status": "failed"}
    end = [{"event": "end", "state": "failed", "error": "ModelError", "message": "No model at 'x'."}]
    assert failure(job, end, "", "en") == "No model at 'x'."
    assert (
        failure(job, end, "", "zh")
        == "底模找不到、打不开，或不是能用的模型，请换一个底模。英文原因：No model at 'x'."
    )
    crash = [{"event": "end", "state": "failed", "error": "ZeroDivisionError", "message": "division by zero"}]
    assert failure(job, crash, "", "zh").startswith("出现了意外错误")
    assert failure(job, [], "Traceback\nKilled\n\n", "zh") == "任务没有完成，日志最后一行（英文）：Killed"
    assert failure({**job, "status": "done"}, end, "", "zh") == ""
    assert stage_bar({"status": "queued"}, []) == {"done": 0, "total": None, "eta_s": None}


def test_jobs_show_a_bar_and_a_failed_label_job_says_why_in_chinese(client, workspace, style_images):
    empty = client.post("/api/datasets", data={"name": "空的"}).json()["dataset"]
    job = client.post("/api/label", json={"dataset": empty, "backend": "filename"}).json()
    assert wait_job(client, job["id"])["job"]["status"] == "failed"
    zh = client.get(f"/api/jobs/{job['id']}", params={"lang": "zh"}).json()
    en = client.get(f"/api/jobs/{job['id']}", params={"lang": "en"}).json()
    sentence = (
        f"No images (jpg, png, webp, bmp) found in '{workspace.root / empty}'. "
        "Pass the folder that has your images."
    )
    assert en["failure"] == sentence
    assert zh["failure"] == (
        "素材（图片、描述或描述表）有问题，请按提示修改后再试。英文原因："
        + sentence
        + " 怎么办：检查文件夹路径，换成里面有 jpg/png/webp 图片的文件夹"  # the README table's hint
    )
    listed = {j["id"]: j for j in client.get("/api/jobs", params={"lang": "zh"}).json()["jobs"]}
    assert listed[job["id"]]["failure"] == zh["failure"]
    # a dataset with images: the label job's bar ends at 4 of 4, counted by the stage
    dataset = client.post("/api/datasets", data={"name": "neon"}).json()["dataset"]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(style_images.glob("*.png"))]
    client.post("/api/upload", data={"dataset": dataset}, files=files)
    job = client.post("/api/label", json={"dataset": dataset, "backend": "filename"}).json()
    done = wait_job(client, job["id"])
    assert done["bar"] == {"done": 4, "total": 4, "eta_s": None} and done["failure"] == ""
    events = read_progress(workspace.root / "jobs" / job["id"] / "progress.jsonl")
    assert [e["event"] for e in events] == ["start", "progress", "end"] and events[-1]["state"] == "done"
