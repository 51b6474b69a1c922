"""kohya's folder conventions beyond `N_name` repeats: one metadata entry per subset folder, `0_name`
folders switched off, and a training folder that is itself an `N_name` folder."""

from __future__ import annotations

import json
import logging

import pytest

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
from lora_scripts.errors import DataError
from lora_scripts.save.metadata import RunFacts, build_metadata


@pytest.fixture
def kohya_dir(tmp_path, make_image):
    """img/10_neon phone/ (4 captioned images) and 2 images outside any `N_name` folder."""
    root = tmp_path / "img"
    for i in range(4):
        make_image(root / "10_neon phone" / f"p{i}.png")
        (root / "10_neon phone" / f"p{i}.txt").write_text("neon， phone、 glow" if i else "neon, phone")
    make_image(root / "loose" / "a.png")
    make_image(root / "b.png")
    (root / "b.txt").write_text("neon, cup")
    return root


def test_facts_have_one_entry_per_subset_folder_as_kohya(kohya_dir, data_config):
    facts = scan_dataset(data_config(kohya_dir, num_repeats=3)).facts()
    assert facts["dataset_dirs"] == {
        "10_neon phone": {"n_repeats": 10, "img_count": 4},
        "img": {"n_repeats": 3, "img_count": 2},  # outside any `N_name` folder: the training folder's name
    }
    assert facts["tag_frequency"] == {
        "10_neon phone": {"neon": 4, "phone": 4, "glow": 3},
        "img": {"neon": 1, "cup": 1},
    }
    assert facts["num_images"] == 6 and facts["num_samples"] == 4 * 10 + 2 * 3


def test_the_saved_metadata_names_the_subset_folders(kohya_dir, tiny_model, tmp_path):
    cfg = build_config(
        {"base_model": str(tiny_model["single_file"]), "train_data_dir": str(kohya_dir), "resolution": 64}
    )
    facts = scan_dataset(cfg.data).facts()
    meta = build_metadata(cfg, RunFacts("sd1", **facts))
    assert json.loads(meta["ss_dataset_dirs"]) == facts["dataset_dirs"]
    assert set(json.loads(meta["ss_tag_frequency"])) == {"10_neon phone", "img"}
    assert meta["ss_num_train_images"] == str(4 * 10 + 2)


def test_zero_repeats_folders_are_left_out_with_one_log_line(kohya_dir, data_config, make_image, caplog):
    """kohya ignores a subset with fewer than 1 repeat: renaming a folder to `0_x` switches it off, at any
    depth; its metadata.csv rows are passed over, not called missing images."""
    make_image(kohya_dir / "0_disabled" / "off.png")
    make_image(kohya_dir / "loose" / "0_old" / "deep" / "gone.png")
    (kohya_dir / "metadata.csv").write_text(
        "filename,prompt\n0_disabled/off.png,off\ngone.png,gone\nb.png,neon, cup\n", encoding="utf-8"
    )
    with caplog.at_level(logging.INFO):
        index = scan_dataset(data_config(kohya_dir))
    names = sorted(item.path.name for item in index.items)
    assert names == ["a.png", "b.png", "p0.png", "p1.png", "p2.png", "p3.png"]
    skipped = [r.getMessage() for r in caplog.records if "0_" in r.getMessage()]
    assert len(skipped) == 1 and "2 images in '0_disabled', 'loose/0_old'" in skipped[0]


def test_only_switched_off_images_is_a_sentence(tmp_path, data_config, make_image):
    make_image(tmp_path / "img" / "0_neon" / "a.png")
    with pytest.raises(DataError, match=r"Every image in .* switched off by its 0_ name \(0_neon: 0 repeats"):
        scan_dataset(data_config(tmp_path / "img"))


def test_regularisation_images_in_a_zero_repeats_folder_are_left_out(kohya_dir, data_config, make_image):
    reg = kohya_dir.parent / "reg"
    make_image(reg / "1_device" / "r0.png")
    make_image(reg / "0_device" / "r1.png")
    index = scan_dataset(data_config(kohya_dir, reg_data_dir=reg))
    assert [item.path.name for item in index.reg_items] == ["r0.png"]


def test_a_training_folder_that_is_itself_a_repeats_folder_is_warned_about(tmp_path, make_image, caplog):
    from lora_scripts.config.data import DataConfig

    folder = tmp_path / "img" / "10_neon phone"
    make_image(folder / "a.png")
    with caplog.at_level(logging.WARNING):
        index = scan_dataset(DataConfig(train_data_dir=folder, resolution=64))
    assert index.items[0].repeats == 1 and index.items[0].caption == ""  # what the warning is about
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][0] == (
        "'10_neon phone' is a kohya repeats folder: its repeats and class name are read only from subfolders "
        "of train_data_dir; set train_data_dir to its parent folder"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        scan_dataset(DataConfig(train_data_dir=tmp_path / "img", resolution=64))  # its parent: as meant
    assert not [r for r in caplog.records if "repeats folder" in r.getMessage()]


def test_the_regularisation_folders_are_recorded_as_kohya_does(kohya_dir, tiny_model, make_image):
    """ss_reg_dataset_dirs: one entry per reg subset folder; ss_num_reg_images counts repeats, as kohya."""
    reg = kohya_dir.parent / "reg"
    for i in range(3):
        make_image(reg / "2_device" / f"r{i}.png")
    make_image(reg / "loose.png")
    base = {"base_model": str(tiny_model["single_file"]), "train_data_dir": str(kohya_dir), "resolution": 64}
    cfg = build_config({**base, "reg_data_dir": str(reg)})
    facts = scan_dataset(cfg.data).facts()
    meta = build_metadata(cfg, RunFacts("sd1", **facts))
    assert json.loads(meta["ss_reg_dataset_dirs"]) == {
        "2_device": {"n_repeats": 2, "img_count": 3},
        "reg": {"n_repeats": 1, "img_count": 1},
    }
    assert meta["ss_num_reg_images"] == str(3 * 2 + 1)
    without = build_config(base)
    meta = build_metadata(without, RunFacts("sd1", **scan_dataset(without.data).facts()))
    assert meta["ss_reg_dataset_dirs"] == "{}" and meta["ss_num_reg_images"] == "0"
