"""Every word the page can show exists in both languages: the keys the page (index.html) and its script
(app.js) ask for, the job kinds, statuses and finding levels they build keys from, the titles and
sentences of every doctor check, and a Chinese sentence for every error family a job can fail with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lora_scripts import errors
from lora_scripts.doctor.report import GROUPS
from lora_scripts.doctor.text_zh import CHECK_ZH, FINDINGS_ZH
from lora_scripts.language import LANGS
from lora_scripts.ui import jobs
from lora_scripts.ui.i18n import MESSAGES

UI = Path(jobs.__file__).parent
DOCTOR = UI.parent / "doctor"
PAGE = (UI / "static/index.html").read_text(encoding="utf-8")
SCRIPT = (UI / "static/app.js").read_text(encoding="utf-8")
CHECK = re.compile(r'"(?:error|warning|note)",\s*"([^"]+)"')  # Finding("warning", "cluttered", ...)


def _missing(keys: set[str]) -> list[str]:
    return sorted(k for k in keys if k not in MESSAGES or set(MESSAGES[k]) != set(LANGS))


def test_every_key_of_the_page_and_its_script_exists_in_both_languages():
    page = set(re.findall(r'data-tp?="([^"]+)"', PAGE))
    script = set(re.findall(r'\bt\("([a-z_]+\.[a-z_.]+)"', SCRIPT))
    assert len(page) > 50 and len(script) > 30  # the walk found the page's words
    assert _missing(page | script) == []


def test_every_key_the_script_builds_from_a_kind_status_or_level_exists():
    prefixes = set(re.findall(r'\bt\("([a-z_]+\.)" \+', SCRIPT))
    assert prefixes == {"kind.", "status.", "job.", "level."}
    kinds = set(re.findall(r'jobs\.submit\(\s*"(\w+)"', "".join(p.read_text() for p in UI.glob("*.py"))))
    statuses = {jobs.QUEUED, jobs.RUNNING, jobs.DONE, jobs.FAILED, jobs.STOPPED, jobs.CANCELLED}
    built = {f"kind.{k}" for k in kinds} | {f"status.{s}" for s in statuses} | {f"job.{s}" for s in statuses}
    built |= {f"level.{level}" for level in GROUPS}
    assert kinds == {"label", "doctor", "train", "generate", "tool", "batch"}
    assert _missing(built) == []


@pytest.mark.parametrize("module", ["images.py", "captions.py", "language.py", "run.py", "chat.py"])
def test_every_doctor_check_has_a_chinese_title(module):
    checks = set(CHECK.findall((DOCTOR / module).read_text(encoding="utf-8")))
    assert sorted(checks - set(CHECK_ZH)) == []


@pytest.mark.parametrize("module", ["images.py", "captions.py", "language.py", "run.py"])
def test_every_image_check_has_a_chinese_sentence(module):
    checks = set(CHECK.findall((DOCTOR / module).read_text(encoding="utf-8")))
    assert checks and sorted(checks - set(FINDINGS_ZH)) == []


def test_every_error_family_a_job_can_fail_with_has_a_sentence():
    subclasses = errors.LoraScriptsError.__subclasses__()
    families = {cls.__name__ for cls in subclasses if cls.__module__ == errors.__name__}
    assert families and _missing({f"failed.{name}" for name in families}) == []
