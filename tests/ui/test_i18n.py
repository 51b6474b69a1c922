"""The UI's message catalogue: complete in both languages, loud on a typo, language from the locale."""

from __future__ import annotations

import pytest

from lora_scripts import language
from lora_scripts.language import LANGS, default_lang
from lora_scripts.ui.i18n import MESSAGES, placeholders, t


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_every_key_exists_in_both_languages_with_the_same_placeholders(key):
    entry = MESSAGES[key]
    assert set(entry) == set(LANGS)
    assert all(entry[lang].strip() for lang in LANGS)
    assert placeholders(entry["en"]) == placeholders(entry["zh"])


def test_chinese_is_written_in_chinese():
    for key, entry in MESSAGES.items():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in entry["zh"]) or key == "form.other", key


def test_t_fills_fields_in_either_language():
    assert t("form.min", "en", limit=1) == "Must be at least 1."
    assert t("form.min", "zh", limit=1) == "不能小于 1。"
    assert t("form.min", "zh_CN.UTF-8", limit=1) == t("form.min", "zh-CN", limit=1) == "不能小于 1。"


def test_an_unknown_key_a_missing_field_or_an_unknown_language_fail_loudly():
    with pytest.raises(KeyError):
        t("form.minn", "en", limit=1)
    with pytest.raises(KeyError):
        t("form.min", "en")
    with pytest.raises(ValueError, match="not supported"):
        t("form.min", "fr", limit=1)


@pytest.mark.parametrize(
    ("env", "lang"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "en_GB", "LC_ALL": "zh_CN.UTF-8"}, "zh"),
        ({"LC_ALL": "", "LANG": "zh_CN"}, "zh"),  # empty means unset
        ({"LORA_SCRIPTS_LANG": "zh", "LC_ALL": "en_US.UTF-8"}, "zh"),  # ours first (Windows has no LANG)
        ({"LORA_SCRIPTS_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"),
    ],
)
def test_default_lang_follows_the_locale_in_posix_order(env, lang):
    assert default_lang(env) == lang


def test_default_lang_reads_the_process_environment(monkeypatch):
    for name in ("LORA_SCRIPTS_LANG", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert language.default_lang() == "zh"
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    assert language.default_lang() == "en"


def test_the_chinese_names_of_settings_checks_and_facts_are_chinese():
    from lora_scripts.doctor.text_zh import CHECK_ZH
    from lora_scripts.ui.field_text import FACT_ZH, FIELD_ZH

    texts = [t for pair in FIELD_ZH.values() for t in pair] + list(CHECK_ZH.values()) + list(FACT_ZH.values())
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts)
