"""kohya's dataset TOML (`dataset_config`): read into our data keys where they say the same, refused in one
sentence naming the file and the key where they cannot."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lora_scripts.config import load_config
from lora_scripts.errors import ConfigError
from lora_scripts.errors_zh import hint_zh

# as kohya's docs/config_README-en.md writes one: [general], one dataset, a training and a reg subset
DATASET_TOML = """\
[general]
shuffle_caption = true
keep_tokens = 1
caption_extension = ".txt"

[[datasets]]
resolution = [768, 768]
batch_size = 2
enable_bucket = true
min_bucket_reso = 320
max_bucket_reso = 1280
bucket_no_upscale = true

  [[datasets.subsets]]
  image_dir = "{train}"
  num_repeats = 10
  flip_aug = true

  [[datasets.subsets]]
  is_reg = true
  image_dir = "{reg}"
  class_tokens = "person"
  num_repeats = 1
  flip_aug = true
"""
TRAINING_TOML = """\
[model_arguments]
pretrained_model_name_or_path = "m.safetensors"
[dataset_arguments]
dataset_config = "{dataset}"
resolution = "512,512"
[training_arguments]
train_batch_size = 1
learning_rate = 1e-4
"""


def _write(folder: Path, dataset: str, **paths: str) -> Path:
    """config.toml naming dataset.toml beside it, with image_dir paths filled in."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.toml").write_text(dataset.format(**paths), encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(TRAINING_TOML.format(dataset="dataset.toml"), encoding="utf-8")
    return config


def _folders(tmp_path: Path) -> dict[str, str]:
    return {"train": (tmp_path / "img").as_posix(), "reg": (tmp_path / "reg" / "1_person").as_posix()}


def test_a_typical_dataset_toml_builds_the_config_of_the_same_yaml(tmp_path, monkeypatch, caplog):
    folders = _folders(tmp_path)
    config = _write(tmp_path / "run", DATASET_TOML, **folders)
    monkeypatch.chdir(tmp_path)  # not the config's folder: dataset.toml is found beside the config
    same = tmp_path / "same.yaml"
    same.write_text(
        f"""\
base_model: m.safetensors
learning_rate: 1e-4
train_data_dir: {folders["train"]}
reg_data_dir: {folders["reg"]}
num_repeats: 10
reg_num_repeats: 1
reg_class_tokens: person
resolution: 768
batch_size: 2
enable_bucket: true
min_bucket_reso: 320
max_bucket_reso: 1280
bucket_no_upscale: true
shuffle_caption: true
keep_tokens: 1
caption_extension: .txt
flip_aug: true
""",
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO, logger="lora_scripts.config"):
        cfg = load_config(config)
    assert cfg.model_dump() == load_config(same).model_dump()
    # the dataset TOML's keys win over the training config's, as in kohya, and the log says so
    assert "resolution: '512,512' in " in caplog.text and "gives way to [768, 768]" in caplog.text
    assert "train_batch_size: 1 in " in caplog.text
    assert load_config(config, ["resolution=256"]).data.resolution == 256  # the command line wins over both


def test_the_path_is_read_from_the_current_folder_first(tmp_path, monkeypatch):
    folders = _folders(tmp_path)
    config = _write(tmp_path / "run", DATASET_TOML, **folders)
    here = tmp_path / "here"
    here.mkdir()
    (here / "dataset.toml").write_text(
        DATASET_TOML.format(**folders).replace("num_repeats = 10", "num_repeats = 7"), encoding="utf-8"
    )
    monkeypatch.chdir(here)
    assert load_config(config).data.num_repeats == 7  # kohya reads it from the current folder
    monkeypatch.chdir(tmp_path)
    assert load_config(config).data.num_repeats == 10  # else beside the config


def test_what_is_not_in_the_toml_keeps_the_training_configs_value(tmp_path, monkeypatch):
    dataset = '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "img"\n'
    config = _write(tmp_path, dataset)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(config)
    assert (cfg.data.train_data_dir, cfg.data.reg_data_dir) == (Path("img"), None)
    assert (cfg.data.resolution, cfg.train.batch_size, cfg.data.num_repeats) == (512, 1, 1)


def _one_dataset(subsets: str, top: str = "") -> str:
    return f"{top}[[datasets]]\n{subsets}"


TRAIN = '[[datasets.subsets]]\nimage_dir = "img"\n'
REG = '[[datasets.subsets]]\nimage_dir = "reg"\nis_reg = true\n'

REFUSED = [
    (_one_dataset(TRAIN) + _one_dataset(TRAIN), ["has 2 [[datasets]]", "one dataset is trained here"]),
    (_one_dataset(TRAIN + TRAIN), ["2 training subsets", "'img'", "N_name subfolders"]),
    (_one_dataset(REG), ["no training subsets", "train_data_dir"]),
    (_one_dataset(TRAIN + REG + REG), ["2 regularisation subsets", "reg_data_dir"]),
    (
        _one_dataset(TRAIN + "flip_aug = true\n" + REG),
        ["Key 'flip_aug'", "true for the training subset but false for the regularisation subset"],
    ),
    (
        _one_dataset('[[datasets.subsets]]\nimage_dir = "img"\nmetadata_file = "meta.json"\n'),
        ["Key 'metadata_file'", "fine-tuning JSON", "metadata.csv"],
    ),
    (_one_dataset("[[datasets.subsets]]\nnum_repeats = 2\n"), ["has no image_dir"]),
    (
        _one_dataset(TRAIN + "num_repeat = 2\n"),
        ["Unknown key 'num_repeat' in [[datasets.subsets]]", "Did you mean 'num_repeats'"],
    ),
    (_one_dataset(TRAIN, "[general]\nseed = 1\n"), ["Unknown key 'seed' in [general]"]),
    (_one_dataset("network_multiplier = 0.5\n" + TRAIN), ["Key 'network_multiplier'", "multiplier 1"]),
    (_one_dataset(TRAIN + "custom_attributes = {{ a = 1 }}\n"), ["Key 'custom_attributes'", "Remove it"]),
    (_one_dataset(TRAIN + 'caption_prefix = "a photo of"\n'), ["Key 'caption_prefix' in ", "as written"]),
    (_one_dataset("resolution = [1024, 768]\n" + TRAIN), ["Key 'resolution' in ", "not square"]),
    (_one_dataset("min_bucket_reso = 16\n" + TRAIN), ["Key 'min_bucket_reso' in ", ">= 32"]),
    ("[[datasets]]\nresolution = = 512\n", ["is not valid TOML", "line 2"]),
]


def test_the_regularisation_subsets_class_tokens_become_reg_class_tokens(tmp_path):
    """Before, these were accepted only for a folder named `N_<class_tokens>`."""
    cfg = load_config(_write(tmp_path, _one_dataset(TRAIN + REG + 'class_tokens = "sks dog"\n')))
    assert cfg.data.reg_data_dir == Path("reg") and cfg.data.reg_class_tokens == "sks dog"


def test_each_subsets_class_tokens_become_its_own_key(tmp_path):
    """The training subset's class_tokens was refused before; a [general] one is every subset's (kohya)."""
    both = TRAIN + 'class_tokens = "sks gadget"\n' + REG + 'class_tokens = "gadget"\n'
    cfg = load_config(_write(tmp_path / "both", _one_dataset(both)))
    assert (cfg.data.class_tokens, cfg.data.reg_class_tokens) == ("sks gadget", "gadget")
    general = load_config(
        _write(tmp_path / "general", _one_dataset(TRAIN + REG, '[general]\nclass_tokens = "phone"\n'))
    )
    assert (general.data.class_tokens, general.data.reg_class_tokens) == ("phone", "phone")


@pytest.mark.parametrize("dataset, words", REFUSED)
def test_what_our_keys_cannot_say_is_one_sentence_naming_the_file_and_key(tmp_path, dataset, words):
    config = _write(tmp_path, dataset)
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    assert all(word in message for word in words), message
    assert "dataset.toml" in message and "\n" not in message, message
    assert hint_zh(message), message  # a Chinese user is told what to do too


def test_a_missing_file_is_one_line_from_the_cli(tmp_path, cli):
    config = tmp_path / "config.toml"
    config.write_text(TRAINING_TOML.format(dataset="nowhere/dataset.toml"), encoding="utf-8")
    done = cli("train", "--config", str(config), "--dry-run", cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert "Key 'dataset_config' in " in lines[0] and "'nowhere/dataset.toml'" in lines[0], lines[0]
    assert "no such file is in the current folder or beside the config" in lines[0], lines[0]


@pytest.mark.parametrize("dataset, words", REFUSED[:8])
def test_each_refusal_exits_2_without_a_traceback(tmp_path, cli, dataset, words):
    config = _write(tmp_path, dataset)
    done = cli("train", "--config", str(config), "--dry-run", cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: ") and words[0] in lines[0], lines[0]
    assert hint_zh(lines[0].removeprefix("Error: "))  # a Chinese user is told what to do too


def test_dry_run_reads_the_dataset_toml(tiny_model, sample_data, tmp_path, cli):
    from lora_scripts.demo import make_sample_images

    reg = tmp_path / "reg" / "1_device"
    make_sample_images(reg, count=2, seed=1)
    (tmp_path / "dataset.toml").write_text(
        f"""\
[general]
enable_bucket = true
min_bucket_reso = 32
max_bucket_reso = 128
bucket_reso_steps = 32

[[datasets]]
resolution = 64
batch_size = 2

  [[datasets.subsets]]
  image_dir = "{sample_data.as_posix()}"
  num_repeats = 3

  [[datasets.subsets]]
  image_dir = "{reg.as_posix()}"
  is_reg = true
  num_repeats = 2
""",
        encoding="utf-8",
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'pretrained_model_name_or_path = "{Path(tiny_model["single_file"]).as_posix()}"\n'
        f'dataset_config = "dataset.toml"\noutput_dir = "{(tmp_path / "out").as_posix()}"\ndevice = "cpu"\n',
        encoding="utf-8",
    )
    done = cli("train", "--config", str(config), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    text = " ".join((done.stdout + done.stderr).split())  # the console wraps long paths
    assert "num_repeats: 3" in text and "reg_num_repeats: 2" in text and "resolution: 64" in text, text
    assert "6 images, 6 captioned, 18 samples per epoch" in text, text
    assert "Regularisation images" in text and "1_device': 2, mixed in" in text, text
