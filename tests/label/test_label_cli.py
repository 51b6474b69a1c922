"""The commands as users run them: `auto_label.py` (seed-compatible) and `lora-scripts label`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lora_scripts.data.captions import read_metadata_csv

ROOT = Path(__file__).resolve().parents[2]


def test_auto_label_script_is_seed_compatible(images, tiny_classifier):
    out = images / "metadata.csv"
    cmd = [sys.executable, str(ROOT / "auto_label.py"), "--input", str(images), "--output", str(out)]
    done = subprocess.run(
        [*cmd, "--model", str(tiny_classifier)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(read_metadata_csv(out)) == 3


def test_cli_bad_input_is_one_line_and_exit_2(images, run_cli):
    (images / "metadata.csv").write_text("filename,prompt\nimg_00.png,mine\n", encoding="utf-8")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    done = run_cli("label", "--input", str(images), "--backend", "tags")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.jpg" in lines[0] and "Traceback" not in done.stderr
    assert (images / "metadata.csv").read_text(encoding="utf-8") == "filename,prompt\nimg_00.png,mine\n"
