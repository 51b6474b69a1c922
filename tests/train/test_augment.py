"""color_aug and random_crop (kohya's options), and that the training loss really draws them per image."""

from __future__ import annotations

import colorsys
import logging
import random

import numpy as np
import pytest
import torch
from PIL import Image

from lora_scripts.config import build_config
from lora_scripts.config.data import DataConfig
from lora_scripts.data import Augment, draw_augment, load_pixels, resize_to_bucket, scan_dataset
from lora_scripts.data.augment import apply_color
from lora_scripts.models.loader import load_components
from lora_scripts.models.sd import StableDiffusion


def _data(**over) -> DataConfig:
    return DataConfig(train_data_dir="d", **over)


@pytest.mark.parametrize("shift", [30.0, -45.0])
def test_hue_shift_rotates_the_hue_and_keeps_saturation_and_value(shift):
    colours = [(200, 40, 40), (40, 160, 90), (30, 60, 220), (128, 128, 128)]
    img = Image.new("RGB", (4, 1))
    img.putdata(colours)
    out = list(apply_color(img, Augment(hue_shift=shift)).getdata())
    for before, after in zip(colours, out, strict=True):
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in before))
        want = [round(c * 255) for c in colorsys.hsv_to_rgb((h + shift / 360) % 1.0, s, v)]
        assert max(abs(a - b) for a, b in zip(after, want, strict=True)) <= 6, (before, after, want)
    assert out[3] == (128, 128, 128)  # grey has no hue to turn
    assert out[0] != colours[0]


def test_gamma_is_applied_to_values_in_zero_to_one():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = Image.fromarray(np.stack([values] * 3, axis=-1))
    out = np.asarray(apply_color(img, Augment(gamma=1.05)))[..., 0].astype(float)
    want = np.rint((values / 255.0) ** 1.05 * 255)
    assert np.abs(out - want).max() <= 1
    assert out[-1, -1] == 255 and out[0, 0] == 0  # black and white stay put


def test_color_aug_changes_a_third_of_the_images_within_kohyas_ranges():
    rng = random.Random(0)
    draws = [draw_augment(_data(color_aug=True), rng) for _ in range(6000)]
    hue = [d.hue_shift for d in draws if d.hue_shift]
    gamma = [d.gamma for d in draws if d.gamma != 1.0]
    assert len(hue) + len(gamma) == pytest.approx(0.33 * 6000, rel=0.06)
    assert len(hue) == pytest.approx(len(gamma), rel=0.15)
    assert max(map(abs, hue)) <= 16.0 and min(gamma) >= 0.95 and max(gamma) <= 1.05
    assert not any(d.flip for d in draws) and all(d.crop_at == (0.5, 0.5) for d in draws)


def test_options_that_are_off_draw_nothing():
    rng = random.Random(3)
    state = rng.getstate()
    assert draw_augment(_data(), rng) == Augment()
    assert rng.getstate() == state  # the trainer's RNG stream (captions, resume) is unchanged


def test_random_crop_moves_the_crop_window():
    img = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1)))  # 256x64, brighter to the right
    img = img.convert("RGB")
    centre = np.asarray(resize_to_bucket(img, (64, 64)))[..., 0]
    left = np.asarray(resize_to_bucket(img, (64, 64), crop_at=(0.0, 0.5)))[..., 0]
    right = np.asarray(resize_to_bucket(img, (64, 64), crop_at=(1.0, 0.5)))[..., 0]
    assert left.mean() < 40 and right.mean() > 215 and 100 < centre.mean() < 155
    assert left[:, 0].mean() < 4 and right[:, -1].mean() > 251  # the very edges of the picture
    rng = random.Random(0)
    spots = {draw_augment(_data(random_crop=True), rng).crop_at for _ in range(20)}
    assert len(spots) == 20 and all(0 <= x < 1 and 0 <= y < 1 for x, y in spots)


def test_scoring_settings_turn_augmentation_off():
    scoring = _data(color_aug=True, random_crop=True, flip_aug=True).for_scoring()
    assert not (scoring.color_aug or scoring.random_crop or scoring.flip_aug)


def _encoded(cfg, items, trainer_rng: random.Random, steps: int) -> list[torch.Tensor]:
    """The pixel batches the real loss hands the VAE over `steps` loss calls (the encoder is watched, not
    replaced: it still encodes)."""
    model = StableDiffusion(load_components(cfg.model))
    seen = []
    real = model.encode_image

    def spy(pixels, generator=None):
        seen.append(pixels.clone())
        return real(pixels, generator)

    model.encode_image = spy
    with torch.no_grad():
        for _ in range(steps):
            model.loss(items, cfg.data, cfg.train, trainer_rng, torch.Generator().manual_seed(0))
    return seen


def test_the_loss_encodes_each_image_with_its_own_draw(base_config, tmp_path):
    """Wide images in square buckets: random_crop and color_aug must reach the pixels the VAE encodes."""
    folder = tmp_path / "wide"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 192, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("a photo")
    over = {"train_data_dir": str(folder), "enable_bucket": False, "random_crop": True, "color_aug": True}
    cfg = build_config({**base_config, **over})
    items = scan_dataset(cfg.data).items
    seen = _encoded(cfg, items, random.Random(5), steps=6)
    replay = random.Random(5)
    for batch in seen:
        want = torch.stack([load_pixels(i, aug=draw_augment(cfg.data, replay)) for i in items])
        assert torch.equal(batch, want)  # (captions draw nothing here: no shuffle, no dropout)
    centred = torch.stack([load_pixels(i) for i in items])
    assert sum(not torch.equal(b, centred) for b in seen) == len(seen)


def test_flip_aug_mirrors_half_the_images_the_loss_encodes(base_config, tmp_path):
    """flip_aug draws a mirror for about half the images, and what the VAE encodes is then the picture
    mirrored left to right (compared with torch.flip of the unflipped pixels), never anything else."""
    rng = random.Random(0)
    draws = [draw_augment(_data(flip_aug=True), rng).flip for _ in range(4000)]
    assert sum(draws) == pytest.approx(2000, rel=0.06)
    folder = tmp_path / "asym"
    folder.mkdir()
    pixels = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "0.png")
    (folder / "0.txt").write_text("a photo")
    cfg = build_config({**base_config, "train_data_dir": str(folder), "flip_aug": True, "batch_size": 1})
    seen = _encoded(cfg, scan_dataset(cfg.data).items, random.Random(2), steps=12)
    plain = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    kinds = []
    for batch in seen:
        image = batch[0].float()
        if torch.allclose(image, plain, atol=1e-2):
            kinds.append("plain")
        elif torch.allclose(image, plain.flip(-1), atol=1e-2):
            kinds.append("mirrored")
    assert len(kinds) == len(seen) and set(kinds) == {"plain", "mirrored"}


def test_cache_latents_says_the_augmentation_is_off(base_config, tmp_path, caplog):
    cfg = build_config({**base_config, "cache_latents": "memory", "color_aug": True, "random_crop": True})
    model = StableDiffusion(load_components(cfg.model))
    with caplog.at_level(logging.WARNING):
        model.prepare_inputs(scan_dataset(cfg.data), cfg.data, cfg.train, ["unet"], tmp_path)
    text = caplog.text
    assert "color_aug has no effect" in text and "random_crop has no effect" in text


def test_caption_tag_dropout_leaves_out_each_tag_after_the_kept_ones():
    from lora_scripts.data import make_caption

    caption = "trigger, red hair, smile, outdoors, night"
    cfg = _data(caption_tag_dropout_rate=0.5, keep_tokens=1)
    rng = random.Random(0)
    outs = [make_caption(caption, cfg, rng).split(", ") for _ in range(4000)]
    assert all(tags[0] == "trigger" for tags in outs)  # keep_tokens are never dropped
    order = ["trigger", "red hair", "smile", "outdoors", "night"]
    assert all(tags == [t for t in order if t in tags] for tags in outs)  # no shuffle: order kept
    for tag in order[1:]:
        assert sum(tag in tags for tags in outs) / len(outs) == pytest.approx(0.5, abs=0.03)
    assert make_caption(caption, _data(caption_tag_dropout_rate=1.0, keep_tokens=1), rng) == "trigger"
    assert make_caption(caption, _data(), rng) == caption
    assert _data(caption_tag_dropout_rate=0.3).for_scoring().caption_tag_dropout_rate == 0.0


def test_caption_tag_dropout_turns_the_caption_cache_off(base_config, tmp_path, caplog):
    cfg = build_config({**base_config, "caption_tag_dropout_rate": 0.2})
    model = StableDiffusion(load_components(cfg.model))
    with caplog.at_level(logging.INFO):
        model.prepare_inputs(scan_dataset(cfg.data), cfg.data, cfg.train, ["unet"], tmp_path)
    assert model.text_cache is None and "caption_tag_dropout_rate" in caplog.text


def test_keep_tokens_separator_fixes_the_head_and_the_tail():
    from lora_scripts.data import make_caption

    caption = "trigger, style ||| red hair, smile, outdoors, night ||| masterpiece"
    cfg = _data(keep_tokens_separator="|||", shuffle_caption=True, keep_tokens=3)
    rng = random.Random(1)
    orders = set()
    for _ in range(200):
        tags = make_caption(caption, cfg, rng).split(", ")
        assert tags[:2] == ["trigger", "style"] and tags[-1] == "masterpiece"  # keep_tokens yields to it
        assert sorted(tags[2:-1]) == sorted(["red hair", "smile", "outdoors", "night"])
        orders.add(tuple(tags[2:-1]))
    assert len(orders) > 10  # the middle is shuffled
    plain = _data(keep_tokens_separator="|||")  # no shuffle: the marker alone is taken out
    want = "trigger, style, red hair, smile, outdoors, night, masterpiece"
    assert make_caption(caption, plain, rng) == want
    assert make_caption("a, b, c", plain, rng) == "a, b, c"  # captions without the marker are as written


def test_the_caption_cache_holds_captions_without_the_marker(base_config, tmp_path):
    folder = tmp_path / "marked"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(folder / "a.png")
    (folder / "a.txt").write_text("trigger ||| red, metal")
    cfg = build_config({**base_config, "train_data_dir": str(folder), "keep_tokens_separator": "|||"})
    model = StableDiffusion(load_components(cfg.model))
    index = scan_dataset(cfg.data)
    model.prepare_inputs(index, cfg.data, cfg.train, ["unet"], tmp_path / "cache")
    assert set(model.text_cache.memory) == {"trigger, red, metal"}
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        loss = model.loss(index.items, cfg.data, cfg.train, random.Random(0), gen)
    assert torch.isfinite(loss)
