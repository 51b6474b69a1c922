"""The training options a resumed state must agree on: kohya's newer options join the fingerprint only when
set, so states of runs that never used them still resume."""

from __future__ import annotations

from lora_scripts.config import build_config
from lora_scripts.data import scan_dataset
from lora_scripts.train.fingerprint import OPTION_KEYS, differences, run_fingerprint


def _fingerprint(base_config, **over):
    cfg = build_config({**base_config, **over})
    return run_fingerprint(cfg, scan_dataset(cfg.data))


def test_default_options_leave_the_fingerprint_as_it_was(base_config):
    plain = _fingerprint(base_config)
    options = {k for keys in OPTION_KEYS.values() for k in keys}
    assert not options & set(plain)  # a state saved before these options existed matches this run


def test_a_changed_option_is_named_as_a_difference(base_config):
    plain = _fingerprint(base_config)
    snr = _fingerprint(base_config, min_snr_gamma=5, loss_type="huber", color_aug=True)
    diff = differences(plain, snr)
    assert diff == [
        "min_snr_gamma: not recorded -> 5.0",
        "loss_type: not recorded -> huber",
        "color_aug: not recorded -> True",
    ]
    assert differences(snr, plain) == [
        "min_snr_gamma: 5.0 -> not set",
        "loss_type: huber -> not set",
        "color_aug: True -> not set",
    ]
    blocks = _fingerprint(base_config, up_lr_weight=[1.0] * 11 + [0.0], loraplus_lr_ratio=16)
    assert {d.split(":")[0] for d in differences(plain, blocks)} == {"up_lr_weight", "loraplus_lr_ratio"}
    assert not differences(snr, _fingerprint(base_config, min_snr_gamma=5, loss_type="huber", color_aug=True))


def test_a_block_weight_preset_is_recorded_as_earlier_versions_did(base_config):
    """Versions up to a8fa92b spread a preset over SD's 12 blocks in the config and recorded the 12 numbers;
    the config now keeps the word (SDXL spreads it over 9). A state of such a run must still resume."""
    import math

    old_sine_plus = str([math.sin(math.pi * (i / 11) / 2) + 0.5 for i in range(12)])  # what they recorded
    old_reverse = str([i / 11 for i in reversed(range(12))])
    now = _fingerprint(base_config, up_lr_weight="sine+0.5", down_lr_weight="reverse_linear")
    assert now["up_lr_weight"] == old_sine_plus and now["down_lr_weight"] == old_reverse
    assert differences(now, _fingerprint(base_config, up_lr_weight="sine+0.5", down_lr_weight="linear"))
    exact = _fingerprint(base_config, up_lr_weight="linear+1.2345678")["up_lr_weight"]
    assert exact == str([i / 11 + 1.2345678 for i in range(12)])  # the number as written, not rounded
    assert _fingerprint(base_config, up_lr_weight="zeros+")["up_lr_weight"] == str([0.0] * 12)  # kohya's "+"
