"""`lora-scripts ui`: the web UI on 127.0.0.1:7860 (registered on the main app by cli.py).

`--listen` serves every interface and then needs `--auth user:password` or `--auth-file` (a file whose
first line is user:password): it refuses to start without one, in one sentence.
"""

from __future__ import annotations

from pathlib import Path

import typer

DEBUG = typer.Option(False, "--debug", help="Show full tracebacks and library logs.")


def ui(
    port: int = typer.Option(7860, "--port", help="Port to serve on."),
    listen: bool = typer.Option(
        False, "--listen", help="Serve on every network interface (0.0.0.0); needs --auth or --auth-file."
    ),
    auth: str = typer.Option(None, "--auth", help="user:password that the browser must give."),
    auth_file: Path = typer.Option(None, "--auth-file", help="File whose first line is user:password."),
    lang: str = typer.Option(None, "--lang", help="zh or en (default: the system language)."),
    workspace: Path = typer.Option(
        Path("workspace"), "--workspace", help="The folder the UI reads and writes (and nothing else)."
    ),
    debug: bool = DEBUG,
) -> None:
    """A web page for the whole route (images -> captions -> check -> train -> generate), in Chinese and
    English. Serves on 127.0.0.1 only unless --listen; opens no browser."""
    from ..console import console, guarded, setup_logging

    setup_logging(debug)

    def action():
        from ..errors import ConfigError
        from ..language import default_lang, normalise_lang
        from .workspace import Workspace

        credentials = read_auth(auth, auth_file)
        if listen and credentials is None:
            raise ConfigError(
                "--listen makes the UI reachable from other machines, so it refuses to start without a "
                "password",
                "Add --auth user:password or --auth-file FILE, or leave out --listen",
            )
        try:
            language = normalise_lang(lang) if lang else default_lang()
        except ValueError as exc:
            raise ConfigError(f"--lang '{lang}' is not supported", "Use --lang zh or --lang en") from exc
        ws = Workspace(workspace)
        host = "0.0.0.0" if listen else "127.0.0.1"
        serve(ws, host, port, language, credentials, console)

    guarded(action, debug)


def read_auth(auth: str | None, auth_file: Path | None) -> tuple[str, str] | None:
    from ..errors import ConfigError

    text = auth
    if auth_file is not None:
        try:
            lines = auth_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the auth file '{auth_file}' ({exc.strerror or exc})",
                "Give a file whose first line is user:password",
            ) from exc
        text = lines[0].strip() if lines else ""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError(
            "The login must be user:password with both parts filled in", "Write it like --auth admin:s3cret"
        )
    return user, password


def serve(ws, host: str, port: int, lang: str, credentials, console) -> None:
    import socket

    from ..errors import ConfigError

    try:
        import uvicorn

        from .server import UiSettings, create_app
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"The web UI needs the package '{exc.name}', which is not installed",
            "Install the UI's extra: .venv/bin/pip install -e '.[ui]' (bash scripts/setup.sh does)",
        ) from exc

    with socket.socket() as probe:  # a port in use: one sentence, not uvicorn's traceback
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"Port {port} on {host} is in use", "Stop the other program or use --port"
            ) from exc
    app = create_app(UiSettings(ws, lang, credentials))
    shown = "127.0.0.1" if host == "127.0.0.1" else socket.gethostname()
    console.print(
        f"Web UI: http://{shown}:{port}/  (workspace: {ws.root}; Ctrl-C to stop)",
        highlight=False,
        markup=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `lora-scripts` app."""
    app.command("ui")(ui)
