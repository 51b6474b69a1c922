"""One LoRA per output_dir: report.html, loss.png, samples/ and state/ carry no name, so a second LoRA
trained into the same folder replaced the first one's report and samples and mixed its training states
with the first one's (kohya users keep one output_dir and change output_name). The run records its name in
a small file; a run of another name is refused before anything is written, naming a folder of its own."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import OutputConfig
from ..errors import OutputError
from ..save.atomic import atomic_write_text

OWNER_FILE = ".lora-scripts-run.json"


def folder_owner(folder: Path) -> str | None:
    """The output_name of the run that wrote `folder`'s report and states; None when none is recorded
    (a new folder, or one made before this file existed)."""
    try:
        data = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("output_name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def check_owner(out: OutputConfig) -> None:
    owner, name = folder_owner(out.output_dir), out.name()
    if owner is None or owner == name:
        return
    own = (out.output_dir.parent if out.output_dir.name == owner else out.output_dir) / name
    raise OutputError(
        f"output_dir '{out.output_dir}' holds the training files of another LoRA, '{owner}' (report.html, "
        f"loss.png, samples/ and training states); training '{name}' there would replace them",
        f"Give each LoRA its own folder, e.g. output_dir: {own}",
    )


def claim(out: OutputConfig) -> None:
    """Record which LoRA this folder's run files belong to (the main process, once the folder exists)."""
    if folder_owner(out.output_dir) != out.name():
        atomic_write_text(json.dumps({"output_name": out.name()}) + "\n", out.output_dir / OWNER_FILE)
