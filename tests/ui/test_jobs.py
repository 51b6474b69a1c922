"""Jobs: the real `lora-scripts` CLI in processes started by the UI (label, doctor, train, generate, LoRA
tools), a queue for trainings, Stop = the CLI's graceful stop, Resume, and jobs that outlive the UI."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from uihelp import tiny_train_values, wait_job

httpx = pytest.importorskip("httpx", reason="the web UI's extra is not installed: pip install -e .[ui]")


def _dataset(client, style_images, name="neon") -> str:
    dataset = client.post("/api/datasets", data={"name": name}).json()["dataset"]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sorted(style_images.glob("*.png"))]
    assert len(client.post("/api/upload", data={"dataset": dataset}, files=files).json()["written"]) == 4
    return dataset


def test_label_then_doctor_jobs_write_captions_and_findings_shown_per_image(client, workspace, style_images):
    dataset = _dataset(client, style_images)
    job = client.post("/api/label", json={"dataset": dataset, "backend": "filename", "trigger": "neon style"})
    done = wait_job(client, job.json()["id"])
    assert done["job"]["status"] == "done" and "4 new" in done["log"]
    captions = {
        i["name"]: i["caption"] for i in client.get("/api/dataset", params={"path": dataset}).json()["images"]
    }
    assert captions["000_phone.png"] == "neon style, phone"
    client.post("/api/caption", json={"dataset": dataset, "image": "000_phone.png", "caption": "霓虹手机"})
    job = client.post("/api/doctor", json={"dataset": dataset, "resolution": 64})
    checked = wait_job(client, job.json()["id"])
    assert checked["job"]["status"] == "done" and checked["bar"] == {"done": 4, "total": 4, "eta_s": None}
    shown = client.get("/api/dataset", params={"path": dataset}).json()
    chinese = next(f for f in shown["findings"] if "Chinese" in f["message"])
    assert chinese["images"] == ["000_phone.png"] and chinese["level"] == "warning"
    zh = client.get("/api/dataset", params={"path": dataset, "lang": "zh"}).json()["findings"]
    assert "描述是中文" in [f["title"] for f in zh]
    assert next(f["message"] for f in zh if f["check"] == "Chinese caption") == (  # the sentence too
        "4 条描述里有 1 条主要是中文（例如“霓虹手机”）。SD 1.x、2.x 和 SDXL 只看得懂英文，"
        "这些中文对模型几乎没有意义：000_phone.png。请翻译成英文或写英文标签（触发词可以不改）。"
    )
    report = client.get(f"/files/{dataset}/doctor_report.html")
    assert report.headers["content-security-policy"] == "sandbox"
    assert "Worth fixing" in report.text and "最好改一下" not in report.text
    job = client.post("/api/doctor", json={"dataset": dataset, "resolution": 64}, params={"lang": "zh"})
    assert wait_job(client, job.json()["id"])["job"]["status"] == "done"
    report = client.get(f"/files/{dataset}/doctor_report.html").text  # from the Chinese page: in Chinese
    assert "最好改一下" in report and "只看得懂英文" in report and "Worth fixing" not in report
    results = {j["kind"]: j["result"] for j in client.get("/api/jobs").json()["jobs"]}
    assert results == {
        "label": f"/files/{dataset}/metadata.csv",
        "doctor": f"/files/{dataset}/doctor_report.html",
    }


def test_trainings_queue_stop_resume_then_generate_and_inspect(client, workspace, style_images):
    dataset = _dataset(client, style_images)
    client.post("/api/label", json={"dataset": dataset, "backend": "filename", "trigger": "neon style"})
    assert client.post("/api/models/demo").json() == {"model": "models/demo-base.safetensors"}
    first = client.post("/api/train/start", json={"values": tiny_train_values(dataset, "long", 30)}).json()[
        "job"
    ]
    second = client.post("/api/train/start", json={"values": tiny_train_values(dataset, "short", 4)}).json()[
        "job"
    ]
    assert second["status"] == "queued"  # one training at a time
    wait_job(client, first["id"], until=lambda d: d["progress"].get("step", 0) >= 3)
    assert client.get(f"/api/jobs/{second['id']}").json()["job"]["status"] == "queued"
    client.post(f"/api/jobs/{first['id']}/stop")
    stopped = wait_job(client, first["id"])
    assert stopped["job"]["status"] == "stopped" and stopped["job"]["returncode"] == 130, stopped["log"]
    step = stopped["progress"]["step"]
    assert 3 <= step < 30 and (workspace.root / f"loras/long/state/step-{step:06d}").is_dir()
    short = wait_job(client, second["id"])  # the queue moves on once the first has stopped
    assert short["job"]["status"] == "done" and short["job"]["started"] >= stopped["job"]["finished"] - 1
    # the resumed training, generating with the short LoRA and a tool on it run side by side (only trainings
    # queue): three processes at once instead of one after another
    resumed = client.post(f"/api/jobs/{first['id']}/resume").json()["job"]
    request = {
        "model": "models/demo-base.safetensors",
        "loras": [{"path": "loras/short/short.safetensors", "weight": 1}],
        "prompt": "neon style, a phone",
        "steps": 3,
        "width": 64,
        "height": 64,
        "grid_weights": "0,1",
    }
    drawing = client.post("/api/generate", json=request).json()["job"]
    resize = {"tool": "resize", "inputs": ["loras/short/short.safetensors"], "out": "loras/small.safetensors"}
    tool = client.post("/api/tools", json={**resize, "rank": 2}).json()["job"]
    assert drawing["status"] == tool["status"] == "running"
    done = wait_job(client, resumed["id"])
    progress = done["progress"]
    assert done["job"]["status"] == "done", done["log"]
    train_log = (workspace.root / "loras/long/train.log").read_text(encoding="utf-8")
    assert f"Resumed from loras/long/state/step-{step:06d} (step {step}," in train_log
    assert [s for s, _ in progress["steps"]] == list(range(1, 31))  # one curve across stop and resume
    assert progress["step"] == 30 and progress["total"] == 30 and progress["eta_s"] is None
    assert any(s["step"] == 30 for s in progress["samples"])
    assert client.get(progress["samples"][-1]["url"]).status_code == 200
    assert client.get(progress["report"]).status_code == 200
    listed = {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}
    assert listed[resumed["id"]]["result"] == "/files/loras/long/report.html"
    # the images of the LoRA at two weights
    made = wait_job(client, drawing["id"])
    assert made["job"]["status"] == "done", made["log"]
    assert made["bar"] == {"done": 2, "total": 2, "eta_s": None}  # one event per image drawn
    images = client.get("/api/gallery").json()["images"]
    params = [i["parameters"] for i in images if not i["grid"]]
    assert [p.split("\n")[0] for p in params] == [
        "<lora:short:0> neon style, a phone",
        "<lora:short:1> neon style, a phone",
    ]
    assert any(i["grid"] for i in images)
    # the library: inspect facts, sample grid and report; the tool's file
    resized = wait_job(client, tool["id"])
    assert resized["job"]["status"] == "done" and resized["bar"] == {"done": 1, "total": 1, "eta_s": None}
    library = {item["path"]: item for item in client.get("/api/loras").json()["loras"]}
    long = library["loras/long/long.safetensors"]
    assert long["facts"]["family"] == "sd1" and long["report"].endswith("report.html")
    assert not any("/state/" in path for path in library)
    assert library["loras/long/long-step000005.safetensors"]["checkpoint"] is True  # listed after, no facts
    assert list(library)[0] == "loras/long/long.safetensors"
    assert library["loras/small.safetensors"]["facts"]["groups"][0]["ranks"] == "2"
    zh_long = client.get("/api/loras", params={"lang": "zh"}).json()["loras"][0]
    zh = zh_long["facts_shown"]
    assert ["训练步数", "30"] in zh and ["steps", "30"] in long["facts_shown"]
    assert ["计算精度", "否（全精度 fp32）"] in zh and ["mixed precision", "no"] in long["facts_shown"]
    zh_groups = [g["group"] for g in zh_long["facts"]["groups"]]
    assert zh_groups == ["UNet 下采样层", "UNet 中间层", "UNet 上采样层"]
    assert [g["group"] for g in long["facts"]["groups"]] == ["UNet down", "UNet mid", "UNet up"]
    assert (workspace.root / "loras/small.safetensors").is_file()


def test_a_job_outlives_the_ui_and_a_restarted_ui_follows_and_stops_it(workspace, style_images, ui_process):
    ui = ui_process(workspace.root).wait_ready()
    http = httpx.Client(base_url=ui.url, timeout=30)
    dataset = _dataset(http, style_images)
    http.post("/api/label", json={"dataset": dataset, "backend": "filename"})
    http.post("/api/models/demo")
    values = tiny_train_values(dataset, "endless", 5000)
    job = http.post("/api/train/start", json={"values": values}).json()["job"]
    wait_job(http, job["id"], until=lambda d: d["progress"].get("step", 0) >= 1)
    doctor = http.post("/api/doctor", json={"dataset": dataset, "resolution": 64}).json()
    ui.kill(signal.SIGKILL)  # the UI dies without a word; its jobs run on
    pid = json.loads((workspace.root / "jobs" / job["id"] / "job.json").read_text())["pid"]
    os.kill(pid, 0)
    ended = workspace.root / "jobs" / doctor["id"] / "exit.json"
    deadline = time.time() + 60
    while not ended.is_file() and time.time() < deadline:  # the doctor job ends while no UI is running
        time.sleep(0.2)
    assert ended.is_file()
    again = ui_process(workspace.root).wait_ready()
    http = httpx.Client(base_url=again.url, timeout=30)
    jobs = {j["id"]: j for j in http.get("/api/jobs").json()["jobs"]}
    assert jobs[job["id"]]["status"] == "running"
    assert wait_job(http, doctor["id"], timeout=30)["job"]["status"] == "done"
    before = http.get(f"/api/jobs/{job['id']}").json()["progress"]["step"]
    later = wait_job(http, job["id"], until=lambda d: d["progress"]["step"] > before)  # still training
    assert later["job"]["status"] == "running"
    http.post(f"/api/jobs/{job['id']}/stop")
    stopped = wait_job(http, job["id"], timeout=60)
    assert stopped["job"]["status"] == "stopped" and stopped["job"]["returncode"] == 130, stopped["log"]
    assert "Training interrupted at step" in stopped["log"]


def _processes_running(text: str) -> list[int]:
    """The pids of live processes whose command line contains `text`."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            cmdline = open(f"/proc/{entry.name}/cmdline", "rb").read().decode(errors="replace")
            state = open(f"/proc/{entry.name}/stat", encoding="utf-8").read().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the job's processes through /proc")
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.5])
def test_stop_while_a_job_starts_stops_it_and_leaves_no_process(client, workspace, style_images, delay):
    """Stop pressed while the job's runner is still starting (before it could pass signals on) once killed
    the runner and left the CLI training on its own, or called the job failed."""
    dataset = _dataset(client, style_images)
    assert client.post("/api/models/demo").status_code == 200
    name = f"race{int(delay * 100)}"
    job = client.post("/api/train/start", json={"values": tiny_train_values(dataset, name, 60)}).json()["job"]
    time.sleep(delay)
    client.post(f"/api/jobs/{job['id']}/stop")
    stopped = wait_job(client, job["id"], timeout=120)
    assert stopped["job"]["status"] == "stopped", stopped
    config = json.loads((workspace.root / "jobs" / job["id"] / "job.json").read_text())["command"][-1]
    assert config.endswith(".yaml")  # the CLI is `lora-scripts train -c CONFIG`: its command line names it
    deadline = time.time() + 15
    while _processes_running(config) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_running(config) == []
    assert not (workspace.root / f"loras/{name}/{name}.safetensors").exists()  # it did not train to the end
