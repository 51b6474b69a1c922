"""A real run on kohya's folder layout: the saved LoRA names its subset folders as kohya's does, and a
`0_name` folder is left out of training."""

from __future__ import annotations

import json

import yaml
from PIL import Image

from lora_scripts.config import build_config
from lora_scripts.save.kohya import read_lora_file
from lora_scripts.train.run import run_training


def test_the_saved_lora_names_each_subset_folder_and_skips_switched_off_ones(base_config, tmp_path):
    img = tmp_path / "img"
    for folder, count in (("10_neon phone", 4), ("0_disabled", 2)):
        (img / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (64, 64), (50 * i, 90, 160)).save(img / folder / f"{i}.png")
            (img / folder / f"{i}.txt").write_text(f"neon, phone {i}", encoding="utf-8")
    result = run_training(build_config({**base_config, "train_data_dir": str(img), "max_train_steps": 2}))
    _, meta = read_lora_file(str(result.lora_path))
    assert json.loads(meta["ss_dataset_dirs"]) == {"10_neon phone": {"n_repeats": 10, "img_count": 4}}
    tags = json.loads(meta["ss_tag_frequency"])
    assert list(tags) == ["10_neon phone"] and tags["10_neon phone"]["neon"] == 4
    assert meta["ss_num_train_images"] == "40"
    log = (result.lora_path.parent / "train.log").read_text(encoding="utf-8")
    assert "Leaving out 2 images in '0_disabled'" in log


def test_a_training_folder_that_is_a_repeats_folder_is_warned_about_once(base_config, tmp_path, cli):
    """The dataset scan says it, and the doctor (which runs next, before training) does not say it again."""
    folder = tmp_path / "img" / "10_neon"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (64, 64), (60 * i, 90, 160)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("neon, phone", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**base_config, "train_data_dir": str(folder)}), encoding="utf-8")
    done = cli("train", "--config", str(config), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert " ".join(done.stderr.split()).count("'10_neon' is a kohya repeats folder") == 1
