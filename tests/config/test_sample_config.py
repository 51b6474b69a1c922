"""Sample settings fail when the config is read (and so `--dry-run`), never at the first sample step."""

import pytest
import yaml

from lora_scripts.config import build_config
from lora_scripts.config.sample import SAMPLERS
from lora_scripts.errors import ConfigError

BASE = {"base_model": "m.safetensors", "train_data_dir": "data"}


def _error(**extra) -> str:
    with pytest.raises(ConfigError) as info:
        build_config({**BASE, **extra}, source="c.yaml")
    return str(info.value)


def test_misspelt_sampler_fails_dry_run_with_did_you_mean(base_config, tmp_path, run_cli):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**base_config, "sample_sampler": "Eular a"}), encoding="utf-8")
    done = run_cli("train", "--config", str(path), "--dry-run")
    assert done.returncode == 2, done.stderr
    assert "sample_sampler" in done.stderr and "Did you mean 'Euler a'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("spelling", ["euler_a", "Euler A", "dpm++ 2m karras", "ddim"])
def test_sampler_spellings_are_normalised(spelling):
    cfg = build_config({**BASE, "sample_sampler": spelling})
    assert cfg.sample.sample_sampler in SAMPLERS


def test_unknown_sampler_lists_the_known_ones():
    message = _error(sample_sampler="Heun")
    assert "'Heun'" in message and "'DPM++ 2M'" in message and "c.yaml" in message


def test_lora_tag_in_a_sample_prompt_is_refused():
    message = _error(sample_prompts=["<lora:other:0.5> a phone"], sample_every_n_steps=10)
    assert "sample_prompts" in message and "<lora:other:0.5> a phone" in message
    assert "remove the tag" in message


def test_sample_schedule_without_prompts_is_refused():
    message = _error(sample_every_n_steps=10)
    assert "sample_every_n_steps: 10" in message and "sample_prompts is empty" in message
    assert "c.yaml" in message


def test_one_prompt_as_text_is_one_prompt():
    cfg = build_config({**BASE, "sample_prompts": "a neon phone", "sample_every_n_steps": 5})
    assert cfg.sample.sample_prompts == ["a neon phone"]


def test_bad_list_item_names_the_key_and_item():
    message = _error(sample_prompts=["fine", 5])
    assert message.startswith("Key 'sample_prompts' (item 2) in c.yaml has value 5")


def test_union_value_names_every_accepted_form():
    message = _error(batch_size="big")
    assert message.startswith("Key 'batch_size' in c.yaml has value 'big'")
    assert "a whole number or auto" in message


def test_section_mistakes_are_named():
    assert "belongs to 'train'" in _error(network={"learning_rate": 1e-4})
    assert "Section 'train'" in _error(train="fast")
    assert build_config({**BASE, "sample": None}).sample.sample_prompts == []


@pytest.mark.parametrize(
    ("prompt", "option", "key"),
    [
        ("neon phone --n blurry --s 3 --w 64 --h 64 --d 7 --l 7.5", "--n", "sample_negative_prompt"),
        ("neon phone --s 30", "--s", "sample_steps"),
        ("neon phone --W 640", "--w", "sample_size"),
        ("neon phone --d 7", "--d", "sample_seed"),
        ("neon phone --l 7.5", "--l", "sample_cfg_scale"),
        ("neon phone --ss k_euler_a", "--ss", "sample_sampler"),
        ("neon phone --g 3.5", "--g", "no counterpart here"),
    ],
)
def test_kohya_per_prompt_options_in_a_yaml_prompt_are_refused(prompt, option, key):
    """Here they would be drawn as prompt text; the sentence names the option and the key to use instead."""
    message = _error(sample_prompts=["a fine prompt", prompt], sample_every_n_steps=10)
    assert message.startswith("Key 'sample_prompts' in c.yaml")
    assert f"'{prompt}' has kohya's per-prompt option {option}, which is not read here" in message
    assert key in message and "sample_negative_prompt, sample_steps, sample_seed" in message
    assert "\n" not in message


def test_a_sectioned_sample_prompt_with_kohya_options_is_refused():
    message = _error(sample={"sample_prompts": ["neon phone --n blurry"]})
    assert "per-prompt option --n" in message and "sample_negative_prompt instead" in message


@pytest.mark.parametrize(
    "prompt",
    [
        "a t-shirt -- red",
        "--sigh, well-lit",
        "neon sign saying --w",
        "rain --w wide",
        "arrow --> up",
        "x--n 3",
    ],
)
def test_ordinary_dashes_in_a_prompt_are_text(prompt):
    cfg = build_config({**BASE, "sample_prompts": [prompt], "sample_every_n_steps": 5})
    assert cfg.sample.sample_prompts == [prompt]


def test_train_dry_run_with_kohya_options_in_a_prompt_is_one_sentence(base_config, tmp_path, cli):
    path = tmp_path / "c.yaml"
    prompts = ["neon phone --n blurry --s 3 --w 64 --h 64 --d 7 --l 7.5"]
    path.write_text(yaml.safe_dump({**base_config, "sample_prompts": prompts}), encoding="utf-8")
    done = cli("train", "--config", str(path), "--dry-run")
    assert done.returncode == 2, done.stderr
    assert "per-prompt option --n" in done.stderr and "set sample_negative_prompt instead" in done.stderr
    assert "Traceback" not in done.stderr


def test_kohya_options_get_their_own_chinese_hint():
    from lora_scripts.errors_zh import hint_zh

    for message in (_error(sample_prompts=["neon phone --n blurry"]), _error(sample_prompts="neon --s 3")):
        assert "sample_negative_prompt" in hint_zh(message) and "--n" in hint_zh(message)
