"""Faults around a run, through the CLI (a real process where a signal or a second process is the point):
two runs on one folder, a full disk, kill -9 leftovers, output inside the images, file modes others can read,
checks that must come before anything is written."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lora_scripts.config import build_config
from lora_scripts.train.run import run_training


def _write(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lora_scripts.cli", "train", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
def test_second_run_on_the_same_folder_refuses_and_a_stale_lock_is_taken_over(base_config, tmp_path, cli):
    out = tmp_path / "out"
    long_run = _write({**base_config, "max_train_steps": 2000, "doctor": "off"}, tmp_path / "long.yaml")
    first = _start(long_run)
    try:
        _wait_for(out / ".lora-scripts.lock", first)
        second = cli("train", "--config", str(_write({**base_config, "doctor": "off"}, tmp_path / "b.yaml")))
        assert second.returncode == 2, second.stderr
        assert f"process {first.pid}" in second.stderr and "Another training" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    # kill -9 left the lock and (planted here, as a kill mid-write leaves them) temp files
    assert (out / ".lora-scripts.lock").exists()
    leftovers = [out / ".test_lora.safetensors.k1ll3d.tmp", out / "state" / ".tmp-k1ll3d"]
    leftovers[0].write_bytes(b"half a file")
    leftovers[1].mkdir(parents=True)
    third = cli("train", "--config", str(_write({**base_config, "doctor": "off"}, tmp_path / "c.yaml")))
    assert third.returncode == 0, third.stderr
    assert "stale lock" in third.stderr
    assert not any(p.exists() for p in leftovers)
    assert not (out / ".lora-scripts.lock").exists()  # released at the end


def test_output_inside_the_training_images_is_refused(base_config, cli, tmp_path):
    inside = Path(base_config["train_data_dir"]) / "lora_out"
    proc = cli(
        "train", "--config", str(_write({**base_config, "output_dir": str(inside)}, tmp_path / "c.yaml"))
    )
    assert proc.returncode == 2 and "inside train_data_dir" in proc.stderr
    assert not inside.exists()


def test_init_lora_rank_conflict_writes_nothing(base_config, tmp_path, cli):
    first = run_training(build_config({**base_config, "max_train_steps": 1, "doctor": "off"}))
    out = tmp_path / "v2"
    cfg = {**base_config, "init_lora": str(first.lora_path), "lora_rank": 8, "output_dir": str(out)}
    proc = cli("train", "--config", str(_write(cfg, tmp_path / "c.yaml")))
    assert proc.returncode == 2 and "has rank 4" in proc.stderr
    assert not out.exists()  # no train.log, no logs/ before the check


def test_written_files_follow_the_umask(base_config):
    """mkstemp's 0600 kept WebUI/ComfyUI running as another user from reading the LoRA."""
    old = os.umask(0o022)
    try:
        cfg = build_config(
            {
                **base_config,
                "max_train_steps": 1,
                "doctor": "off",
                "sample_prompts": ["a phone"],
                "sample_every_n_steps": 1,
                "sample_steps": 2,
            }
        )
        result = run_training(cfg)
    finally:
        os.umask(old)
    out = cfg.output.output_dir
    for path in (result.lora_path, out / "report.html", *result.samples[1]):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.fixture()
def small_disk(tmp_path):
    """A real file system that can fill up: a tmpfs mount (root only, as in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=560m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_full_disk_is_a_sentence_and_keeps_the_last_complete_state(base_config, tmp_path, small_disk):
    out = small_disk / "out"
    cfg = {
        **base_config,
        "output_dir": str(out),
        "max_train_steps": 2000,
        "save_steps": 1,
        "save_state": True,
        "keep_last_n": 2,
        "doctor": "off",
    }
    proc = _start(_write(cfg, tmp_path / "c.yaml"))
    _wait_for(out / "state" / "step-000002" / "position.json", proc)
    filler = small_disk / "filler.bin"
    with open(filler, "wb") as handle:  # fill the disk while the run goes on saving every step
        chunk = b"\0" * 2**20
        with pytest.raises(OSError):
            while True:
                handle.write(chunk)
                handle.flush()
    try:
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 2, err
    assert "is full" in err and str(out) in err and "Unexpected" not in err and "Traceback" not in err
    states = sorted((out / "state").glob("step-*"))
    assert states and all((s / "position.json").is_file() for s in states)
    assert not list(out.glob(".*.tmp")) and not list((out / "state").glob(".tmp-*"))
    filler.unlink()
    step = int(states[-1].name.split("-")[1])
    resume = _write({**cfg, "max_train_steps": step + 1, "resume": "auto"}, tmp_path / "r.yaml")
    resumed = subprocess.run(
        [sys.executable, "-m", "lora_scripts.cli", "train", "--config", str(resume)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {step}" in resumed.stderr  # continued from the newest complete state


def test_a_damaged_latent_cache_entry_is_recomputed(base_config, caplog):
    """A cut cache file (kill or full disk while caching) crashed every later run with SafetensorError."""
    cfg = {**base_config, "cache_latents": "disk", "max_train_steps": 1, "doctor": "off"}
    run_training(build_config(cfg))
    cache = Path(base_config["output_dir"]) / "latent_cache"
    files = sorted(cache.glob("*.safetensors"))
    assert len(files) == 6 and not list(cache.glob(".*.tmp"))
    files[0].write_bytes(files[0].read_bytes()[:40])
    files[1].write_bytes(b"")
    with caplog.at_level("WARNING", logger="lora_scripts"):
        run_training(build_config({**cfg, "overwrite": True}))
    damaged = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(damaged) == 2
    assert len(sorted(cache.glob("*.safetensors"))) == 6
    from safetensors.torch import load_file

    assert load_file(files[0])["latent"].dim() == 3  # rewritten whole


def _caching_run(base_config, tmp_path, count=200) -> Path:
    from PIL import Image

    images = tmp_path / "many"
    images.mkdir()
    for i in range(count):
        Image.new("RGB", (256, 256), (i % 255, 40, 200)).save(images / f"{i:03d}.png")
        (images / f"{i:03d}.txt").write_text("neon style, phone", encoding="utf-8")
    cfg = {
        **base_config,
        "train_data_dir": str(images),
        "resolution": 256,
        "max_bucket_reso": 256,
        "cache_latents": "memory",
        "doctor": "off",
    }
    return _write(cfg, tmp_path / "cache.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_during_caching_stops_within_seconds(base_config, tmp_path, sig):
    """Started the way a shell starts a background job (SIGINT ignored, inherited by Python), the run
    once kept caching and trained to the end after kill -INT."""
    log = tmp_path / "err.txt"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lora_scripts.cli",
                "train",
                "--config",
                str(_caching_run(base_config, tmp_path)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        end = time.time() + 300
        while "Caching latents" not in log.read_text() and time.time() < end and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(0.5)
        sent = time.time()
        proc.send_signal(sig)
        proc.wait(timeout=120)
    assert proc.returncode == 130, log.read_text()[-2000:]
    assert time.time() - sent < 15
    assert "Stopped by the user" in log.read_text() and "Traceback" not in log.read_text()
    assert not (Path(base_config["output_dir"]) / "test_lora.safetensors").exists()


@pytest.mark.slow
def test_sigterm_during_training_saves_and_resumes(base_config, tmp_path):
    out = Path(base_config["output_dir"])
    cfg = {**base_config, "max_train_steps": 2000, "doctor": "off", "resume": "auto"}
    proc = _start(_write(cfg, tmp_path / "c.yaml"))
    _wait_for(out / "logs", proc)
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "resume: auto" in err and "Traceback" not in err
    assert list((out / "state").glob("step-*/position.json"))


@pytest.mark.slow
def test_stopped_run_still_writes_its_report_and_the_log_starts_with_a_header(base_config, tmp_path):
    out = Path(base_config["output_dir"])
    cfg = {**base_config, "max_train_steps": 2000, "doctor": "off", "mixed_precision": "fp16"}
    config = _write(cfg, tmp_path / "c.yaml")
    proc = _start(config)
    _wait_for(out / "logs", proc)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Stopped at step" in report and "of 2000" in report and "resume: auto" in report
    assert "config asked for fp16" in report  # the precision that really ran (CPU: fp32) is recorded
    first = (out / "train.log").read_text(encoding="utf-8").splitlines()[0]
    assert "=== lora-scripts" in first and str(config) in first


@pytest.mark.slow
def test_stop_during_sampling_does_not_wait_for_every_image(base_config, tmp_path):
    """Ctrl-C set a flag that was read only after all sample images: minutes on a loaded CPU."""
    out = Path(base_config["output_dir"])
    cfg = {
        **base_config,
        "max_train_steps": 50,
        "doctor": "off",
        "sample_every_n_steps": 1,
        "sample_prompts": [f"a neon phone number {i}" for i in range(12)],
        "sample_steps": 40,
    }
    proc = _start(_write(cfg, tmp_path / "c.yaml"))
    _wait_for(out / "logs", proc)
    end = time.time() + 120
    while "step 1 epoch" not in (out / "train.log").read_text(encoding="utf-8") and time.time() < end:
        time.sleep(0.05)  # step 1 done: the 12 x 40-step samples of step 1 are being drawn now
    time.sleep(0.5)
    sent = time.time()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "resume: auto" in err and "Traceback" not in err
    assert time.time() - sent < 8
    assert not list((out / "samples").glob("step000001-*.png"))  # stopped before the samples were done
    assert list((out / "state").glob("step-000001/position.json"))


def test_stop_signal_while_python_shuts_down_ends_quietly():
    """A data-parallel launcher stops the other processes after one failed; a process already finishing got
    SIGTERM while Python waited for its threads and printed a KeyboardInterrupt traceback (a CI failure)."""
    script = (
        "import os, signal, sys, threading, time\n"
        "from lora_scripts import cli\n"
        "threading.Thread(target=time.sleep, args=(3,)).start()  # Python waits for it at exit\n"
        "threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()\n"
        "sys.argv = ['lora-scripts', '--help']\n"
        "cli.main()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert done.returncode == -signal.SIGTERM
