"""Regularisation images (kohya's reg_data_dir + prior_loss_weight): how many join each epoch, their
captions, and their weight in the loss."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from PIL import Image

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
from lora_scripts.data.dataset import ImageItem, epoch_batches, reg_samples
from lora_scripts.errors import DataError
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion
from lora_scripts.train.run import run_training


def _item(name: str, repeats: int) -> ImageItem:
    return ImageItem(path=f"/r/{name}.png", caption=name, repeats=repeats, size=(64, 64), bucket=(64, 64))


def test_reg_samples_follow_kohyas_balancing():
    a, b, c = _item("a", 1), _item("b", 1), _item("c", 1)
    # 10 training samples: a, b, c once each (3), then one more of each in turn: a b c (6), a b c (9), a (10)
    assert Counter(i.caption for i in reg_samples([a, b, c], 10)) == {"a": 4, "b": 3, "c": 3}
    # the first pass adds an image with all its repeats and may overshoot; later images are then unused
    big = _item("big", 5)
    assert Counter(i.caption for i in reg_samples([big, b], 4)) == {"big": 5}
    assert reg_samples([], 10) == [] and reg_samples([a], 0) == []


def _reg_folder(tmp_path, count=3, folder="1_device"):
    reg = tmp_path / "reg" / folder
    reg.mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (64, 64), (40 * i, 90, 160)).save(reg / f"r{i}.png")
    (reg / "r0.txt").write_text("a captioned device")
    return tmp_path / "reg"


def test_reg_images_join_each_epoch_as_often_as_training_samples(base_config, tmp_path):
    reg = _reg_folder(tmp_path)
    cfg = build_config({**base_config, "reg_data_dir": str(reg), "prior_loss_weight": 0.5})
    index = scan_dataset(cfg.data)
    assert len(index.items) == 6 and len(index.reg_items) == 3  # the training images are unchanged
    captions = {i.path.name: i.caption for i in index.reg_items}
    assert captions == {"r0.png": "a captioned device", "r1.png": "device", "r2.png": "device"}
    assert {i.loss_weight for i in index.reg_items} == {0.5} and {i.loss_weight for i in index.items} == {1.0}
    for epoch in range(2):
        samples = [i for batch in epoch_batches(index, 2, seed=0, epoch=epoch) for i in batch]
        reg_paths = {i.path for i in index.reg_items}
        assert sum(i.path in reg_paths for i in samples) == 6  # = the 6 training samples
        assert sum(i.path not in reg_paths for i in samples) == 6
    assert "Regularisation images" in index.summary()
    assert "regularisation" in index.data_id()
    plain = scan_dataset(build_config(base_config).data)
    assert "regularisation" not in plain.data_id() and plain.data_id() != index.data_id()


def test_reg_class_tokens_caption_the_reg_images_without_a_caption_file(base_config, tmp_path):
    """kohya's class_tokens of the regularisation subset (reg_class_tokens here) wins over the folder's name
    for images without a caption file; a caption file still wins over both."""
    reg = _reg_folder(tmp_path, folder="1_device")
    cfg = build_config({**base_config, "reg_data_dir": str(reg), "reg_class_tokens": "sks gadget"})
    captions = {i.path.name: i.caption for i in scan_dataset(cfg.data).reg_items}
    assert captions == {"r0.png": "a captioned device", "r1.png": "sks gadget", "r2.png": "sks gadget"}


def test_reg_num_repeats_counts_for_reg_images_outside_n_name_folders(base_config, tmp_path):
    """kohya repeats each subset by its own num_repeats (dataset TOML: training 10, regularisation 1):
    reg_num_repeats is the regularisation folder's; an N_name folder still says its own."""
    reg = _reg_folder(tmp_path, folder="device")  # no N_ in the name: the default repeats count
    _reg_folder(tmp_path, count=2, folder="2_phone")
    for path in (reg / "device").glob("*.png"):
        path.with_suffix(".txt").write_text("a device")
    base = {**base_config, "reg_data_dir": str(reg), "num_repeats": 3}
    same = scan_dataset(build_config(base).data)
    own = scan_dataset(build_config({**base, "reg_num_repeats": 1}).data)
    by_folder = {(i.path.parent.name, i.repeats) for i in own.reg_items}
    assert by_folder == {("device", 1), ("2_phone", 2)}
    assert {(i.path.parent.name, i.repeats) for i in same.reg_items} == {("device", 3), ("2_phone", 2)}
    assert {i.repeats for i in own.items} == {3} == {i.repeats for i in same.items}  # training: num_repeats
    assert own.data_id() != same.data_id()  # a resume notices the change


def test_prior_loss_weight_scales_the_reg_images_loss(base_config, tmp_path):
    reg = _reg_folder(tmp_path, count=2)
    cfg = build_config({**base_config, "reg_data_dir": str(reg), "prior_loss_weight": 0.25})
    index = scan_dataset(cfg.data)
    model = StableDiffusion(load_components(cfg.model))
    train_item = next(i for i in index.items if i.bucket == index.reg_items[0].bucket)
    batch = [train_item, index.reg_items[0]]
    seen = {}
    real_predict = model.predict

    def predict(noisy, t, cond, sizes):
        seen["pred"] = real_predict(noisy, t, cond, sizes)
        return seen["pred"]

    real_target = model.target

    def target(latents, noise, t):
        seen["target"] = real_target(latents, noise, t)
        return seen["target"]

    model.predict, model.target = predict, target
    with torch.no_grad():
        loss = model.loss(batch, cfg.data, cfg.train, random.Random(0), torch.Generator().manual_seed(1))
    per_sample = ((seen["pred"].double() - seen["target"].double()) ** 2).mean(dim=(1, 2, 3))
    assert float(loss) == pytest.approx(float((per_sample * torch.tensor([1.0, 0.25])).mean()), rel=1e-5)
    assert float(loss) != pytest.approx(float(per_sample.mean()), rel=1e-3)


def test_training_with_reg_images_and_cached_latents(base_config, tmp_path):
    reg = _reg_folder(tmp_path)
    cfg = build_config(
        {**base_config, "reg_data_dir": str(reg), "cache_latents": "memory", "max_train_steps": 3}
    )
    result = run_training(cfg)
    assert result.steps == 3 and all(map(math.isfinite, result.losses))
    assert result.plan.steps_per_epoch == 6  # 6 training + 6 regularisation samples, batch 2


def test_missing_or_empty_reg_folder_is_one_sentence(base_config, tmp_path):
    with pytest.raises(DataError, match="reg_data_dir") as err:
        scan_dataset(build_config({**base_config, "reg_data_dir": str(tmp_path / "nope")}).data)
    assert "\n" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images .* reg_data_dir"):
        scan_dataset(build_config({**base_config, "reg_data_dir": str(tmp_path / "empty")}).data)
