"""A key written twice is an error, not a silent last-one-wins; `key=value` overrides still replace."""

import pytest

from lora_scripts.config import build_config, load_config
from lora_scripts.errors import ConfigError

BASE = "base_model: m.safetensors\ntrain_data_dir: d\n"


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(BASE + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text, words",
    [
        ("lora_rank: 4\nnetwork: {lora_rank: 8}\n", ["'lora_rank' is set twice"]),
        ("network_dim: 16\nlora_rank: 4\n", ["set twice", "as 'network_dim' and as 'lora_rank'"]),
        ("lora_rank: 4\nnetwork_dim: 16\n", ["set twice", "as 'lora_rank' and as 'network_dim'"]),
    ],
)
def test_a_key_written_twice_is_refused(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert all(word in str(info.value) for word in words) and "c.yaml" in str(info.value)


def test_overrides_replace_keys_wherever_they_were_written(tmp_path):
    path = _write(tmp_path, "network: {network_dim: 4}\ntrain: {learning_rate: 1.0e-4}\n")
    cfg = load_config(path, ["lora_rank=32", "unet_lr=3e-4"])
    assert cfg.network.lora_rank == 32 and cfg.train.learning_rate == 3e-4


def test_one_key_once_still_works():
    cfg = build_config({"base_model": "m", "train_data_dir": "d", "network": {"network_dim": 16}})
    assert cfg.network.lora_rank == 16
