"""The train form comes from the config models themselves, and its validation is the CLI's validation."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import Field, create_model

from lora_scripts.config import build_config
from lora_scripts.config.root import SECTIONS, key_to_section
from lora_scripts.errors import ConfigError
from lora_scripts.ui.forms import BASIC, form_fields, label, validate
from lora_scripts.ui.i18n import t


def by_name() -> dict:
    return {f.name: f for f in form_fields()}


def test_every_config_field_appears_exactly_once_in_its_section():
    fields = form_fields()
    expected = Counter((section, name) for section, cls in SECTIONS.items() for name in cls.model_fields)
    assert Counter((f.section, f.name) for f in fields) == expected
    assert all(count == 1 for count in Counter(f.name for f in fields).values())


def test_a_field_added_to_a_section_appears_without_ui_work(monkeypatch):
    grown = create_model(
        "GrownData",
        __base__=SECTIONS["data"],
        brand_colour=(str | None, Field(None, description="The brand colour every image shows.")),
    )
    monkeypatch.setitem(SECTIONS, "data", grown)
    field = by_name()["brand_colour"]
    assert (field.section, field.type, field.group, field.optional) == ("data", "text", "advanced", True)
    assert field.help == "The brand colour every image shows."


def test_every_field_has_help_text_and_a_known_type():
    for field in form_fields():
        assert field.help, field.name
        assert field.type in ("int", "float", "bool", "choice", "path", "text", "list"), field.name
        assert field.type != "choice" or field.choices, field.name


def test_basic_fields_are_the_designers_keys_and_are_real_config_keys():
    owners = key_to_section()
    designers = "base_model train_data_dir output_name output_dir resolution lora_rank lora_alpha epochs"
    designers += " max_train_steps learning_rate batch_size trigger_word sample_prompts"  # issue 12's list
    assert set(BASIC) == set(designers.split())
    assert set(BASIC) <= set(owners)  # a renamed config key breaks this, not the page
    fields = form_fields()
    assert {f.name for f in fields if f.group == "basic"} == set(BASIC)
    assert len([f for f in fields if f.group == "advanced"]) > len(BASIC)
    for name in BASIC:  # each basic field has words in both languages, not its key
        field = by_name()[name]
        assert label(field, "en") != name and label(field, "zh") != name
    assert label(by_name()["noise_offset"], "zh") == "noise_offset"


def test_types_defaults_bounds_and_choices_come_from_the_models():
    f = by_name()
    assert (f["base_model"].type, f["base_model"].required, f["base_model"].section) == (
        "path",
        True,
        "model",
    )
    assert (f["train_data_dir"].type, f["train_data_dir"].route) == ("path", "image")
    res = f["resolution"]
    assert (res.type, res.default, res.min, res.max, res.step) == ("int", 512, 64, 4096, 8)
    lr = f["learning_rate"]
    assert (lr.type, lr.default, lr.min, lr.min_exclusive, lr.max, lr.max_exclusive) == (
        "float",
        1e-4,
        0,
        True,
        1.0,
        False,
    )
    assert (f["lora_dropout"].max, f["lora_dropout"].max_exclusive) == (1.0, True)
    assert f["lr_scheduler"].type == "choice" and "cosine" in f["lr_scheduler"].choices
    assert f["lr_scheduler"].default == "constant"
    assert (f["batch_size"].type, f["batch_size"].choices, f["batch_size"].default) == ("int", ("auto",), 1)
    assert (f["lora_alpha"].type, f["lora_alpha"].optional, f["lora_alpha"].default) == ("float", True, None)
    assert (f["sample_prompts"].type, f["sample_prompts"].default) == ("list", [])
    assert (f["flip_aug"].type, f["flip_aug"].default) == ("bool", False)
    assert (f["output_dir"].type, f["output_dir"].default) == ("path", "output")
    assert f["output_name"].type == "text"
    assert (f["dataset"].route, f["load_in_4bit"].route, f["epochs"].route) == ("llm", "llm", "both")


@pytest.fixture()
def good(sample_data, tmp_path) -> dict:
    """What a designer's form sends: the basic keys, numbers as typed text, as an HTML form posts them."""
    model = tmp_path / "base.safetensors"
    model.write_bytes(b"")  # validation reads the config only; the doctor and loader check the files later
    return {
        "base_model": str(model),
        "train_data_dir": str(sample_data),
        "output_name": "回收箱",
        "output_dir": str(tmp_path / "out"),
        "resolution": "512",
        "lora_rank": "16",
        "lora_alpha": "",
        "epochs": "10",
        "max_train_steps": None,
        "learning_rate": "1e-4",
        "batch_size": "auto",
        "trigger_word": "rcybox",
        "sample_prompts": ["rcybox, a green recycling bin"],
        "flip_aug": "false",
    }


def test_a_good_form_has_no_errors_and_the_cli_accepts_it(good):
    assert validate(good) == {}
    assert validate(good, "zh") == {}
    config = build_config({k: v for k, v in good.items() if v not in (None, "")})
    assert (config.data.resolution, config.train.batch_size, config.output.output_name) == (
        512,
        "auto",
        "回收箱",
    )


@pytest.mark.parametrize(
    ("key", "value", "en", "zh"),
    [
        ("resolution", 63, "Must be a multiple of 8.", "必须是 8 的倍数。"),
        ("resolution", "32", "Must be at least 64.", "不能小于 64。"),
        ("learning_rate", "abc", "Enter a number, such as 0.0001.", "请填写数字，例如 0.0001。"),
        ("learning_rate", 0, "Must be more than 0.", "必须大于 0。"),
        ("learning_rate", 2, "Must be at most 1.", "不能大于 1。"),
        ("epochs", "2.5", "Enter a whole number, such as 512.", "请填写整数，例如 512。"),
        ("flip_aug", "maybe", "Choose yes or no.", "请选择“是”或“否”。"),
        (
            "output_name",
            "a/b",
            'Use a name without / \\ : * ? " < > |.',
            '名称里不能有 / \\ : * ? " < > | 这些符号。',
        ),
        (
            "lr_scheduler",
            "fast",
            "Choose one of: constant, constant_with_warmup, linear, cosine, cosine_with_restarts or "
            "polynomial.",
            "请从这些选项中选择一个：constant, constant_with_warmup, linear, cosine, cosine_with_restarts or "
            "polynomial。",
        ),
    ],
)
def test_a_bad_value_gets_a_message_on_its_field_in_both_languages(good, key, value, en, zh):
    bad = {**good, key: value}
    assert validate(bad, "en") == {key: en}
    assert validate(bad, "zh") == {key: zh}
    with pytest.raises(ConfigError):  # the CLI refuses the same form
        build_config({k: v for k, v in bad.items() if v not in (None, "")})


def test_several_bad_fields_each_get_their_message_at_once(good):
    errors = validate({**good, "resolution": 63, "learning_rate": "abc", "batch_size": 0, "sampler": "x"})
    assert set(errors) == {"resolution", "learning_rate", "batch_size", "sampler"}
    assert errors["batch_size"] == "between 1 and 1024, or auto"  # the config's own range check
    assert errors["sampler"] == t("form.unknown_key", "en", key="sampler")


def test_checks_across_keys_and_routes_land_on_the_field_they_name(good):
    errors = validate({**good, "sample_every_n_steps": 5, "sample_prompts": []})
    assert (
        list(errors) == ["sample_every_n_steps"]
        and "sample_prompts is empty" in errors["sample_every_n_steps"]
    )
    missing = {k: v for k, v in good.items() if k != "train_data_dir"}
    assert list(validate(missing)) == ["train_data_dir"]
    assert validate({**good, "base_model": ""}) == {"base_model": t("form.required", "en")}
    llm = validate({**good, "dataset": "chat.jsonl"})  # an LLM key on the image route: the CLI's sentence
    assert (
        list(llm) == ["dataset"] and "is an LLM key, but this config trains an image LoRA" in llm["dataset"]
    )


def test_kohya_names_are_accepted_like_the_cli_accepts_them(good):
    assert validate({**good, "network_dim": 32}) == {}
    assert validate({**good, "network_dim": 0}) == {"lora_rank": t("form.min", "en", limit=1)}
