"""YAML 1.1's yes/no/on/off booleans: PyYAML read `doctor: off` and `mixed_precision: no` as False, and the
config refused its own documented words. Config files, command-line overrides and the web UI's YAML text
read them as written; true/false fields still take yes/no/on/off."""

from __future__ import annotations

from lora_scripts.config import load_config
from lora_scripts.ui.api_train import flat_values


def _write(tmp_path, text: str):
    path = tmp_path / "words.yaml"
    path.write_text(f"base_model: m.safetensors\ntrain_data_dir: d\noutput_dir: o\n{text}", encoding="utf-8")
    return path


def test_off_and_no_are_the_options_words(tmp_path):
    path = _write(
        tmp_path, "doctor: off\nmixed_precision: no\ncache_latents: no\nflip_aug: yes\nshuffle_caption: on\n"
    )
    cfg = load_config(path)
    assert (cfg.data.doctor, cfg.train.mixed_precision, cfg.train.cache_latents) == ("off", "no", "no")
    assert cfg.data.flip_aug is True and cfg.data.shuffle_caption is True
    assert load_config(_write(tmp_path, "flip_aug: off\n")).data.flip_aug is False


def test_overrides_and_the_ui_text_read_them_too(tmp_path):
    cfg = load_config(_write(tmp_path, ""), ["doctor=off", "mixed_precision=no", "flip_aug=on"])
    assert (cfg.data.doctor, cfg.train.mixed_precision, cfg.data.flip_aug) == ("off", "no", True)
    assert flat_values("doctor: off\nmixed_precision: no\n") == {"doctor": "off", "mixed_precision": "no"}
