"""The user's language: 'zh' or 'en', from LORA_SCRIPTS_LANG or the system locale (the web UI's default page
language and the CLI's Chinese hints under its errors both follow it)."""

from __future__ import annotations

import os
from collections.abc import Mapping

LANGS = ("en", "zh")


def normalise_lang(lang: str) -> str:
    """'zh', 'zh-CN', 'zh_CN.UTF-8' -> 'zh'; 'en', 'en_US' -> 'en'. Any other language raises ValueError."""
    short = lang.replace("-", "_").split("_")[0].split(".")[0].lower()
    if short not in LANGS:
        raise ValueError(f"Language '{lang}' is not supported; use one of {', '.join(LANGS)}")
    return short


def default_lang(environ: Mapping[str, str] | None = None) -> str:
    """LORA_SCRIPTS_LANG (zh or en) when set, else the system locale: the first set of LC_ALL, LC_MESSAGES,
    LANG (POSIX precedence) that starts with zh gives 'zh', anything else 'en'."""
    env = os.environ if environ is None else environ
    for name in ("LORA_SCRIPTS_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"
