"""Each preset is a config the CLI accepts, on its own and with the small-GPU preset on top; the training a
preset starts from the UI trains at its base model's native size (SDXL 1024, SD 1.5 512), and the SDXL 8 GB
preset is configs/sdxl_8gb.yaml. The UI's path is the real one: its check API writes the YAML a job runs,
which is loaded as `lora-scripts train -c` loads it, on tiny SDXL / SD 1.5 files in the workspace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from lora_scripts.config import build_config, load_config
from lora_scripts.config.load import read_yaml
from lora_scripts.config.root import SECTIONS, key_to_section
from lora_scripts.train.family_defaults import with_family_defaults
from lora_scripts.ui.forms import validate
from lora_scripts.ui.i18n import MESSAGES
from lora_scripts.ui.presets import PRESET_LABELS, PRESETS, apply

SDXL_8GB = Path(__file__).resolve().parents[2] / "configs" / "sdxl_8gb.yaml"
# configs/sdxl_8gb.yaml's keys that are the user's own (the form's), not the recipe's
USER_KEYS = ("base_model", "train_data_dir", "output_dir", "output_name", "trigger_word", "sample_prompts")


@pytest.fixture()
def mine(sample_data, tmp_path) -> dict:
    return {
        "base_model": str(tmp_path / "base.safetensors"),
        "train_data_dir": str(sample_data),
        "output_name": "demo",
        "trigger_word": "rcybox",
        "sample_prompts": ["rcybox, a bin"],
    }


@pytest.mark.parametrize(
    "names",
    [
        ("style",),
        ("product",),
        ("character",),
        ("small_gpu",),
        ("sdxl_8gb",),
        ("product", "small_gpu"),
        ("character", "sdxl_8gb"),
    ],
)
def test_every_preset_passes_the_real_config_validation(mine, names):
    values = apply(mine, *names)
    assert validate(values) == {}
    config = build_config(values)
    for name in names:  # every preset value arrives in the typed config (a later preset wins)
        for key, value in PRESETS[name].items():
            if names.index(name) == len(names) - 1 or key not in PRESETS[names[-1]]:
                section = getattr(config, key_to_section()[key])
                assert getattr(section, key) == value, (name, key)


def test_the_presets_differ_where_their_subjects_do():
    assert PRESETS["product"]["flip_aug"] is False and PRESETS["character"]["flip_aug"] is False
    assert PRESETS["style"]["flip_aug"] is True  # a style has no left and right
    assert PRESETS["character"]["lora_rank"] > PRESETS["style"]["lora_rank"]
    small = PRESETS["small_gpu"]
    assert small["gradient_checkpointing"] and small["mixed_precision"] == "fp16" and small["batch_size"] == 1


def test_the_users_values_win_over_a_preset_and_empty_ones_do_not(mine):
    values = apply({**mine, "lora_rank": 4, "epochs": ""}, "character")
    assert values["lora_rank"] == 4 and values["epochs"] == PRESETS["character"]["epochs"]


def test_every_preset_has_a_name_in_both_languages():
    assert set(PRESET_LABELS) == set(PRESETS)
    assert all(key in MESSAGES for key in PRESET_LABELS.values())


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """A tiny SDXL and a tiny SD 1.5 single file, built in code."""
    from lora_scripts.models.tiny import save_tiny_model
    from lora_scripts.models.tiny_sdxl import save_tiny_sdxl

    folder = tmp_path_factory.mktemp("bases")
    return {"sdxl": save_tiny_sdxl(folder)["single_file"], "sd1": save_tiny_model(folder)["single_file"]}


def _form(workspace, bases, family: str | None) -> dict:
    """The designer's own fields, with the `family` base copied into the workspace's models/ (None: a base
    that is not there)."""
    name = f"models/{family or 'missing'}.safetensors"
    if family:
        (workspace.root / "models").mkdir(exist_ok=True)
        shutil.copy(bases[family], workspace.root / name)
    return {
        "base_model": name,
        "train_data_dir": "datasets/d",
        "output_name": "neon",
        "trigger_word": "tech_phone",
        "sample_prompts": ["tech_phone, a phone"],
    }


def _job_config(client, workspace, monkeypatch, values: dict, presets: list[str]):
    """The config a job started from the UI trains with: the check API's YAML, loaded as the job's
    `lora-scripts train -c` loads it (in the workspace, the base model's family defaults applied)."""
    checked = client.post("/api/train/check", json={"values": values, "presets": presets}).json()
    assert checked["errors"] == {}
    path = workspace.root / "configs" / "job.yaml"
    path.write_text(checked["yaml"] + "\n", encoding="utf-8")
    monkeypatch.chdir(workspace.root)
    return yaml.safe_load(checked["yaml"]), with_family_defaults(load_config(path))


def _flat(cfg) -> dict:
    return {
        key: value
        for name in SECTIONS
        if getattr(cfg, name) is not None
        for key, value in getattr(cfg, name).model_dump(mode="json").items()
    }


def test_sdxl_8gb_preset_trains_as_configs_sdxl_8gb_yaml_does(client, workspace, bases, monkeypatch):
    values = _form(workspace, bases, "sdxl")
    _, from_ui = _job_config(client, workspace, monkeypatch, values, ["sdxl_8gb"])
    raw = read_yaml(SDXL_8GB)
    assert set(USER_KEYS) <= set(raw)
    raw.update({**values, "output_dir": "loras/neon"})  # the same base, images and name as the form's
    from_file = with_family_defaults(build_config(raw, source=str(SDXL_8GB)))
    ui, file = _flat(from_ui), _flat(from_file)
    for key in raw:  # the recipe, key by key (resume: the UI has its own Resume button)
        if key != "resume":
            assert ui[key] == file[key], key
    # nothing else differs either; the YAML's explicit `resolution: 1024` keeps max_bucket_reso at its plain
    # default (1024), where SDXL's own default (the preset's) gives 2 x 1024 like a YAML without it
    differ = {k for k in file if ui[k] != file[k]}
    assert differ <= {"resume", "max_bucket_reso"} and ui["max_bucket_reso"] == 2048
    assert ui["resolution"] == 1024 and ui["cache_text_encoder_outputs"] and not ui["train_text_encoder"]


def test_sdxl_8gb_preset_holds_the_yaml_keys_except_the_users_and_the_familys():
    raw = read_yaml(SDXL_8GB)
    recipe = {k: v for k, v in raw.items() if k not in (*USER_KEYS, "resume", "resolution")}
    assert set(PRESETS["sdxl_8gb"]) == set(recipe)  # a key added to the YAML comes to the preset too
    assert raw["resolution"] == 1024  # SDXL's own default: the preset leaves it to the base model


@pytest.mark.parametrize("presets", [[], ["style"], ["product"], ["character"], ["small_gpu"]])
@pytest.mark.parametrize(("family", "size"), [("sdxl", 1024), ("sd1", 512)])
def test_a_preset_trains_at_the_base_models_native_size(
    client, workspace, bases, monkeypatch, presets, family, size
):
    values = _form(workspace, bases, family)
    shown, cfg = _job_config(client, workspace, monkeypatch, values, presets)
    assert shown["resolution"] == size and cfg.data.resolution == size


def test_a_resolution_typed_in_the_form_wins_and_a_missing_base_leaves_it_to_the_run(
    client, workspace, bases, monkeypatch
):
    values = {**_form(workspace, bases, "sdxl"), "resolution": 768}
    shown, cfg = _job_config(client, workspace, monkeypatch, values, ["style"])
    assert shown["resolution"] == 768 and cfg.data.resolution == 768
    missing = client.post(
        "/api/train/check", json={"values": _form(workspace, bases, None), "presets": ["style"]}
    ).json()
    assert missing["errors"] == {} and "resolution" not in yaml.safe_load(missing["yaml"])
    assert "max_bucket_reso" not in yaml.safe_load(missing["yaml"])


def test_a_presets_preview_schedule_waits_for_the_users_preview_prompts(mine):
    without = apply({k: v for k, v in mine.items() if k != "sample_prompts"}, "sdxl_8gb")
    assert validate(without) == {} and "sample_every_n_steps" not in without
    assert apply(mine, "sdxl_8gb")["sample_every_n_steps"] == PRESETS["sdxl_8gb"]["sample_every_n_steps"]
