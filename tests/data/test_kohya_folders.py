"""kohya's folder conventions beyond `N_name` repeats: one metadata entry per subset folder."""

from __future__ import annotations

import json

import pytest

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
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
