"""Labelling where the model hub cannot be reached (China, offline machines): a sentence within seconds that
says how to bring a model folder in, HF_ENDPOINT mirrors honoured, ModelScope folders and ids accepted.

The processes are real: `auto_label.py` and `lora-scripts label` with HF_HUB_OFFLINE, with HF_ENDPOINT at a
closed port, and with HF_ENDPOINT at a small local mirror that serves the tiny WD14 tagger as the hub would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lora_scripts.data.captions import read_metadata_csv
from lora_scripts.errors import ModelError
from lora_scripts.label.run import LabelOptions, label_folder

ROOT = Path(__file__).resolve().parents[2]
FAST = 10  # seconds: interpreter start and imports included


def _label(args: list[str], env: dict[str, str | None], script: bool = False):
    """`lora-scripts label ARGS` (or `auto_label.py ARGS`) in a fresh process; (result, seconds)."""
    environ = {**os.environ, "COLUMNS": "200"}
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    entry = [str(ROOT / "auto_label.py")] if script else ["-m", "lora_scripts.cli", "label"]
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, *entry, *args], capture_output=True, text=True, timeout=60, env=environ
    )
    return done, time.monotonic() - start


def _error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), f"a line printed twice:\n{done.stderr}"
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Retrying" not in done.stderr, done.stderr[-3000:]
    return errors[0]


def test_offline_and_not_cached_fails_fast_saying_how_to_bring_the_model_in(images):
    args = ["--input", str(images), "--backend", "caption", "--model", "nobody-here/blip-not-cached"]
    done, seconds = _label(args, {"HF_HUB_OFFLINE": "1"}, script=True)
    assert done.returncode == 2, done.stderr[-3000:]
    assert seconds < FAST, seconds
    line = _error_line(done)
    assert "'nobody-here/blip-not-cached' is not on this machine" in line and "HF_HUB_OFFLINE" in line
    assert "HF_ENDPOINT" in line and "--model ./models/blip-not-cached" in line, line
    assert "another machine" in line and "hf download nobody-here/blip-not-cached" in line, line
    assert not (images / "metadata.csv").exists()


def test_unreachable_hub_fails_fast_naming_the_endpoint_and_the_mirror_variable(images):
    args = ["--input", str(images), "--backend", "classify", "--model", "nobody-here/vit-not-cached"]
    done, seconds = _label(args, {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert seconds < FAST, seconds
    line = _error_line(done)
    assert "http://127.0.0.1:9 cannot be reached" in line, line
    assert "HF_ENDPOINT" in line and "hf-mirror.com" in line and "--model ./models/vit-not-cached" in line


class _Mirror(BaseHTTPRequestHandler):
    """The two routes hf_hub_download uses: HEAD and GET /<repo>/resolve/<revision>/<file>."""

    repos: dict[str, Path] = {}
    seen: list[str] = []

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self._answer(body=False)

    def do_GET(self):  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        self.seen.append(f"{self.command} {self.path}")
        parts = self.path.split("?")[0].strip("/").split("/")
        repo = "/".join(parts[:2])
        name = "/".join(parts[4:]) if len(parts) > 4 and parts[2] == "resolve" else ""
        folder = self.repos.get(repo)
        if folder is None or not (folder / name).is_file():
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound" if folder is None else "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = (folder / name).read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", "0" * 40)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tiny_tagger):
    """A local stand-in for hf-mirror.com that serves the tiny tagger as `mirror-org/tiny-tagger`."""
    _Mirror.repos, _Mirror.seen = {"mirror-org/tiny-tagger": tiny_tagger}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_hf_endpoint_mirror_is_used_for_download_and_for_the_not_found_sentence(images, mirror):
    env = {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": mirror}
    missing, _ = _label(["--input", str(images), "--backend", "tags", "--model", "mirror-org/nope"], env)
    assert missing.returncode == 2, missing.stderr[-3000:]
    line = _error_line(missing)
    assert "no model 'mirror-org/nope' on the model hub at " + mirror in line, line
    done, _ = _label(["--input", str(images), "--backend", "tags", "--model", "mirror-org/tiny-tagger"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any("/mirror-org/tiny-tagger/resolve/" in request for request in _Mirror.seen)
    assert set(read_metadata_csv(images / "metadata.csv").values()) == {
        "hatsune miku, smartphone, glowing edges, ^_^"
    }


def test_modelscope_folder_with_configuration_json_labels(images, tiny_captioner, tmp_path):
    """`modelscope download` writes configuration.json (and .msc/.mdl bookkeeping) beside config.json."""
    folder = tmp_path / "models" / "blip"
    shutil.copytree(tiny_captioner, folder)
    (folder / "configuration.json").write_text('{"framework": "pytorch", "task": "image-captioning"}')
    (folder / ".msc").write_bytes(b"\x80\x04]\x94.")
    (folder / ".mdl").write_bytes(b"\x80\x04]\x94.")
    opts = LabelOptions(images, backend="caption", model=str(folder), max_new_tokens=4)
    assert label_folder(opts).labelled == 3


def test_modelscope_pipeline_folder_without_config_json_is_named(images, tmp_path):
    folder = tmp_path / "ofa_image-caption"
    folder.mkdir()
    (folder / "configuration.json").write_text('{"framework": "pytorch", "task": "image-captioning"}')
    (folder / "pytorch_model.bin").write_bytes(b"weights")
    with pytest.raises(ModelError) as info:
        label_folder(LabelOptions(images, backend="caption", model=str(folder)))
    message = str(info.value)
    assert "ModelScope" in message and "configuration.json" in message and "config.json" in message


def test_modelscope_id_without_the_package_says_how_to_download_it(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # as on a machine without the package
    with pytest.raises(ModelError) as info:
        label_folder(LabelOptions(images, backend="caption", model="modelscope:damo/blip-like"))
    message = str(info.value)
    assert "modelscope download --model damo/blip-like --local_dir ./models/blip-like" in message
    assert "--model ./models/blip-like" in message and "\n" not in message


def test_modelscope_id_with_the_package_uses_its_snapshot_download(images, tiny_captioner, monkeypatch):
    import types

    asked = []
    stand_in = types.ModuleType("modelscope")  # the real package's entry point, as its docs show it

    def snapshot_download(model_id, **kwargs):
        asked.append(model_id)
        return str(tiny_captioner)

    stand_in.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "modelscope", stand_in)
    opts = LabelOptions(images, backend="caption", model="modelscope:damo/blip-like", max_new_tokens=4)
    assert label_folder(opts).labelled == 3
    assert asked == ["damo/blip-like"]


def test_modelscope_download_failure_is_a_sentence(images, monkeypatch):
    import types

    stand_in = types.ModuleType("modelscope")

    def snapshot_download(model_id, **kwargs):
        raise ConnectionError("HTTPSConnectionPool(host='www.modelscope.cn'): Max retries exceeded")

    stand_in.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "modelscope", stand_in)
    with pytest.raises(ModelError) as info:
        label_folder(LabelOptions(images, backend="caption", model="modelscope:damo/blip-like"))
    message = str(info.value)
    assert "could not be downloaded from ModelScope" in message and "--model ./models/blip-like" in message


def test_a_cached_model_is_used_offline_and_when_the_hub_is_out_of_reach(images, mirror):
    model = ["--backend", "tags", "--model", "mirror-org/tiny-tagger", "--overwrite"]
    first, _ = _label(["--input", str(images), *model], {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": mirror})
    assert first.returncode == 0, first.stderr[-3000:]  # now in the (test session's) hub cache
    offline, _ = _label(["--input", str(images), *model], {"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr[-3000:]
    closed = {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": "http://127.0.0.1:9"}
    away, seconds = _label(["--input", str(images), *model], closed)
    assert away.returncode == 0 and seconds < FAST, away.stderr[-3000:]
    lines = [line for line in away.stderr.splitlines() if "cannot be reached" in line]
    assert len(lines) == 1 and "using the copy of 'mirror-org/tiny-tagger'" in lines[0], away.stderr
    assert "Retrying" not in away.stderr
