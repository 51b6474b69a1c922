from pathlib import Path

import pytest

from lora_scripts.config import build_config, load_config
from lora_scripts.config.show import reference_markdown, resolved_yaml
from lora_scripts.errors import ConfigError

SEED_YAML = """\
train_data_dir: ./data/style_train
metadata_path: ./data/style_train/metadata.csv
base_model: ./models/Stable-diffusion/v1-5-pruned.safetensors
lora_rank: 8
batch_size: 4
epochs: 10
learning_rate: 2e-4
output_dir: ./output/my_style_lora
save_steps: 100
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_keys_work_as_written(tmp_path):
    cfg = load_config(write(tmp_path, SEED_YAML))
    assert cfg.data.train_data_dir == Path("data/style_train")
    assert cfg.model.base_model.endswith("v1-5-pruned.safetensors")
    assert (cfg.network.lora_rank, cfg.train.batch_size, cfg.train.epochs) == (8, 4, 10)
    assert cfg.train.learning_rate == pytest.approx(2e-4)
    assert cfg.output.save_steps == 100
    assert cfg.output.name() == "my_style_lora"
    assert cfg.network.alpha == 8.0


def test_sectioned_yaml_and_kohya_aliases(tmp_path):
    cfg = load_config(
        write(tmp_path, "model: {base_model: m.safetensors}\ndata: {train_data_dir: d}\nnetwork_dim: 16\n")
    )
    assert cfg.network.lora_rank == 16


def test_overrides(tmp_path):
    cfg = load_config(write(tmp_path, SEED_YAML), ["lora_rank=32", "mixed_precision=bf16"])
    assert cfg.network.lora_rank == 32 and cfg.train.mixed_precision == "bf16"


@pytest.mark.parametrize(
    "line, words",
    [
        ("learnig_rate: 1e-4", ["Unknown key 'learnig_rate'", "Did you mean 'learning_rate'"]),
        ("learning_rate: fast", ["learning_rate", "'fast'", "a number"]),
        ("batch_size: 0", ["batch_size", "0", "between 1 and 1024, or auto"]),
        ("epochs: -3", ["epochs", "-3", ">= 1"]),
        ("mixed_precision: fp8", ["mixed_precision", "fp8", "no, fp16 or bf16"]),
        ("lora_rank: 4.5", ["lora_rank", "4.5", "whole number"]),
        ("resolution: 500", ["resolution", "500", "multiple of 8"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(tmp_path, line, words):
    key = line.split(":")[0]  # replace the seed's own line: a key written twice is an error of its own
    kept = "".join(row for row in SEED_YAML.splitlines(keepends=True) if not row.startswith(key + ":"))
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, kept + line + "\n"))
    for word in words:
        assert word in str(err.value)


def test_yaml_with_tabs_says_so(tmp_path):
    with pytest.raises(ConfigError, match="tab"):
        load_config(write(tmp_path, "base_model: x\n\ttrain_data_dir: d\n"))


def test_missing_required_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="base_model"):
        build_config({"train_data_dir": "d"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_yaml_lists_defaults(tmp_path):
    text = resolved_yaml(load_config(write(tmp_path, SEED_YAML)))
    assert "gradient_accumulation_steps: 1" in text and "save_precision" in text


def test_committed_reference_is_up_to_date():
    committed = Path(__file__).parents[2] / "docs" / "config.md"
    assert committed.read_text(encoding="utf-8") == reference_markdown(), "run: lora-scripts config-docs"


@pytest.mark.parametrize("name", ["my_lora_config.yaml", "demo.yaml", "sdxl_8gb.yaml"])
def test_example_configs_are_valid(name):
    load_config(Path(__file__).parents[2] / "configs" / name)


def test_resolved_yaml_loads_back_as_the_same_config():
    """The web UI shows, downloads and loads back the resolved YAML: lists stay lists, and the other
    route's keys are left out (a config with them would be refused as mixing routes)."""
    import yaml

    from lora_scripts.config import build_config

    for raw in (
        {"base_model": "x.safetensors", "train_data_dir": "d", "sample_prompts": ["a, b", "c"]},
        {"base_model": "x", "dataset": "d.jsonl"},
    ):
        cfg = build_config(raw)
        again = build_config(yaml.safe_load(resolved_yaml(cfg)))
        assert again == cfg


def test_our_keys_take_kohyas_spellings_of_their_values():
    """kohya and its GUI write some of our keys' values their own way: read as what they mean, or refused."""
    base = {"base_model": "m.safetensors", "train_data_dir": "d"}
    cfg = build_config(
        {
            **base,
            "resolution": "1024,1024",
            "max_token_length": "75",
            "min_snr_gamma": 0,
            "loraplus_lr_ratio": 0,
            "optimizer_args": '"d0=1e-5" d_coef=1.0',
            "sample_sampler": "k_euler_a",
        }
    )
    assert (cfg.data.resolution, cfg.train.max_token_length) == (1024, None)
    assert (cfg.train.min_snr_gamma, cfg.train.loraplus_lr_ratio) == (None, None)
    assert (cfg.train.optimizer_args, cfg.sample.sample_sampler) == (["d0=1e-5", "d_coef=1.0"], "Euler a")
    assert build_config({**base, "resolution": [768, 768]}).data.resolution == 768
    with pytest.raises(ConfigError, match=r"'resolution'.*'1024,768'.*side of a square"):
        build_config({**base, "resolution": "1024,768"})
