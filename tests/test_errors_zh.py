"""The common errors' "what to do" in Chinese: under the English sentence in the CLI for a Chinese user, and
the README's error table says the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from lora_scripts.errors_zh import hint_zh

README = Path(__file__).resolve().parents[1] / "README.md"


def _train(cfg: dict, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if k not in ("LORA_SCRIPTS_LANG", "LC_ALL", "LC_MESSAGES")}
    return subprocess.run(
        [sys.executable, "-m", "lora_scripts.cli", "train", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**clean, "COLUMNS": "200", "LANG": "C.UTF-8", **env},
    )


def test_a_chinese_user_gets_what_to_do_in_chinese_under_the_english_sentence(base_config, tmp_path):
    done = _train({**base_config, "learning_rate": "fast"}, tmp_path, LANG="zh_CN.UTF-8")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("Error:"))
    assert "learning_rate" in lines[error] and "'fast'" in lines[error]  # the English names the key
    assert lines[error + 1] == "怎么办：填数字，例如 `2e-4`"
    missing = {**base_config, "train_data_dir": str(tmp_path / "nowhere")}
    done = _train(missing, tmp_path, LORA_SCRIPTS_LANG="zh")  # Windows has no LANG: our own variable
    assert "怎么办：检查文件夹路径，换成里面有 jpg/png/webp 图片的文件夹" in done.stderr


def test_others_get_english_only(base_config, tmp_path):
    done = _train({**base_config, "learning_rate": "fast"}, tmp_path, LANG="en_US.UTF-8")
    assert done.returncode == 2 and "怎么办" not in done.stderr and "learning_rate" in done.stderr


def test_the_readme_error_table_says_what_the_cli_says():
    """Each error row's messages (its `...` parts filled in) get the row's Chinese cell from the CLI's table
    (warnings and notes are not errors)."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| message starts with | what to do | 怎么办 |") :].split("\n\n")[0]
    rows = [row.split(" | ") for row in table.splitlines()[2:]]
    errors = [cells for cells in rows if not re.search(r"\(a (warning|note)\)", cells[0])]
    assert len(errors) >= 25
    for cells in errors:
        for shown in re.findall(r"`([^`]+)`", cells[0]):
            message = re.sub(r"\bN\b", "3", shown.replace("...", "x"))
            assert hint_zh(message) == cells[-1].rstrip(" |"), message
