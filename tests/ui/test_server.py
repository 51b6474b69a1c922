"""`lora-scripts ui` as a real process: where it listens, the refusal of --listen without a password, and
HTTP basic auth."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from uihelp import free_port

httpx = pytest.importorskip("httpx", reason="the web UI's extra is not installed: pip install -e .[ui]")


def _listening(port: int) -> set[str]:
    """The addresses (hex, as /proc/net/tcp writes them) with a listening socket on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lora_scripts.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_ui_serves_on_localhost_only_prints_the_url_and_the_page(tmp_path, ui_process):
    ui = ui_process(tmp_path / "ws").wait_ready()
    assert ui.first_line.startswith(f"Web UI: http://127.0.0.1:{ui.port}/")
    assert _listening(ui.port) == {"0100007F"}  # 127.0.0.1, nothing else
    page = httpx.get(ui.url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert httpx.get(ui.url + "/static/app.js").status_code == 200
    assert (tmp_path / "ws" / "datasets").is_dir() and (tmp_path / "ws" / "jobs").is_dir()


def test_listen_without_a_password_refuses_to_start_in_one_sentence(tmp_path):
    port = free_port()
    result = _cli("ui", "--listen", "--port", str(port), "--workspace", str(tmp_path / "ws"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "refuses to start without a password" in output and "--auth" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 3
    assert not _listening(port)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--auth", "admin"], "user:password"),
        (["--auth", ":secret"], "user:password"),
        (["--auth-file", "/nonexistent/auth.txt"], "Cannot read the auth file"),
        (["--lang", "fr"], "--lang 'fr' is not supported"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path, args, words):
    result = _cli("ui", "--port", str(free_port()), "--workspace", str(tmp_path / "ws"), *args)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and words in output, output
    assert "Traceback" not in output


def test_listen_with_an_auth_file_serves_every_interface_behind_the_password(tmp_path, ui_process):
    auth = tmp_path / "auth.txt"
    auth.write_text("designer:纸箱 2026\n", encoding="utf-8")
    ui = ui_process(tmp_path / "ws", "--listen", "--auth-file", str(auth)).wait_ready()
    assert _listening(ui.port) == {"00000000"}  # 0.0.0.0
    for path in ("/", "/api/workspace", "/files/datasets", "/static/app.js"):
        assert httpx.get(ui.url + path).status_code == 401
        wrong = httpx.get(ui.url + path, auth=httpx.BasicAuth("designer", "nope"))
        assert wrong.status_code == 401 and "password" in wrong.text
    right = httpx.get(ui.url + "/api/workspace", auth=httpx.BasicAuth("designer", "纸箱 2026"))
    assert right.status_code == 200 and right.json()["datasets"] == []


def test_without_the_ui_extra_the_command_says_what_to_install(tmp_path):
    """A machine set up before the UI existed: one sentence naming the extra, not a traceback."""
    fake = tmp_path / "site" / "uvicorn"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError('no uvicorn', name='uvicorn')\n")
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "lora_scripts.cli", "ui", "--workspace", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "needs the package 'uvicorn'" in output and "pip install -e" in output
    assert "Traceback" not in output
