"""kohya configs as kohya writes them: sd-scripts' TOML (`--config_file`) and the kohya_ss GUI's saved JSON
build into the config they mean; each kohya key is translated, a logged no-op, or refused in one sentence
naming ours."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lora_scripts.config import build_config, load_config
from lora_scripts.config.kohya import rule_for
from lora_scripts.config.root import ALIASES, key_to_section
from lora_scripts.errors import ConfigError

# As sd-scripts' docs write a config: arguments grouped in tables, which only group (read_config_from_file)
KOHYA_TOML = """\
[model_arguments]
pretrained_model_name_or_path = "{base}"
v2 = false
v_parameterization = false

[additional_network_arguments]
network_module = "lycoris.kohya"
network_dim = 32
network_alpha = 16
network_args = [ "algo=loha", "conv_dim=8", "conv_alpha=4", "down_lr_weight=1,1,1,1,1,1,1,1,1,1,1,0.5", \
"mid_lr_weight=0.5", "up_lr_weight=sine", "loraplus_lr_ratio=16",]
network_train_unet_only = true
network_dropout = 0
unet_lr = 1e-4

[optimizer_arguments]
optimizer_type = "AdamW8bit"
optimizer_args = [ "weight_decay=0.1", "betas=0.9,0.99",]
learning_rate = 1e-4
lr_scheduler = "cosine"
lr_warmup_steps = 50
max_grad_norm = 1.0

[dataset_arguments]
train_data_dir = "{data}"
resolution = "768,768"
enable_bucket = true
min_bucket_reso = 256
max_bucket_reso = 1536
bucket_reso_steps = 64
bucket_no_upscale = true
caption_extension = ".txt"
shuffle_caption = true
keep_tokens = 1
cache_latents = true
cache_latents_to_disk = true

[training_arguments]
output_dir = "{out}"
output_name = "my_style"
save_precision = "fp16"
save_every_n_epochs = 1
save_model_as = "safetensors"
train_batch_size = 2
max_train_epochs = 8
max_train_steps = 1600
max_token_length = 225
xformers = true
mixed_precision = "bf16"
no_half_vae = true
gradient_checkpointing = true
gradient_accumulation_steps = 2
seed = 1234
clip_skip = 2
max_data_loader_n_workers = 2
persistent_data_loader_workers = true
logging_dir = "{out}/logs"
log_with = "tensorboard"
noise_offset = 0.05
min_snr_gamma = 5

[sample_prompt_arguments]
sample_every_n_epochs = 1
sample_sampler = "k_euler_a"
sample_prompts = "{prompts}"
"""


def _toml(tmp_path: Path, text: str = KOHYA_TOML) -> Path:
    prompts = tmp_path / "prompt.txt"
    prompts.write_text("# kohya prompt file\na watercolor fox\n\na watercolor owl\n", encoding="utf-8")
    path = tmp_path / "kohya.toml"
    fields = {"base": tmp_path / "base.safetensors", "data": tmp_path / "img", "out": tmp_path / "out"}
    path.write_text(text.format(**{k: v.as_posix() for k, v in fields.items()}, prompts=prompts.as_posix()))
    return path


def test_a_kohya_toml_builds_the_config_it_means(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lora_scripts.config"):
        cfg = load_config(_toml(tmp_path))
    net, train, data, out = cfg.network, cfg.train, cfg.data, cfg.output
    assert (net.network_type, net.lora_rank, net.lora_alpha) == ("loha", 32, 16.0)
    assert (net.conv_rank, net.conv_alpha, net.train_text_encoder) == (8, 4.0, False)
    assert train.down_lr_weight == [1.0] * 11 + [0.5] and train.mid_lr_weight == 0.5
    assert (train.up_lr_weight, train.loraplus_lr_ratio) == ("sine", 16.0)
    assert (train.learning_rate, train.text_encoder_lr) == (1e-4, None)
    assert (train.optimizer, train.optimizer_args) == ("adamw8bit", ["weight_decay=0.1", "betas=0.9,0.99"])
    assert (train.epochs, train.max_train_steps) == (8, None)  # kohya: max_train_epochs wins
    assert (train.cache_latents, train.max_token_length, train.mixed_precision) == ("disk", 225, "bf16")
    assert (train.batch_size, train.gradient_accumulation_steps, train.seed, train.clip_skip) == (
        2,
        2,
        1234,
        2,
    )
    assert (train.noise_offset, train.min_snr_gamma, train.lr_warmup_steps) == (0.05, 5.0, 50)
    assert (data.resolution, data.max_bucket_reso, data.keep_tokens, data.shuffle_caption) == (
        768,
        1536,
        1,
        True,
    )
    assert (out.output_name, out.save_precision, out.save_every_n_epochs) == ("my_style", "fp16", 1)
    assert data.bucket_no_upscale is True and cfg.model.no_half_vae is True  # kohya's names are ours
    assert cfg.sample.sample_prompts == ["a watercolor fox", "a watercolor owl"]
    assert cfg.sample.sample_sampler == "Euler a"
    logged = caplog.text
    assert "xformers (kohya's): attention runs through PyTorch's scaled_dot_product_attention" in logged
    assert "LyCORIS' preset full also adapts conv_in, conv_out and the time embedding" in logged
    assert "max_train_epochs wins over max_train_steps" in logged


GUI_JSON = {
    "LoRA_type": "Kohya LoCon",
    "LyCORIS_preset": "full",
    "adaptive_noise_scale": 0,
    "additional_parameters": "",
    "anima_attn_mode": "torch",
    "block_dims": "",
    "bucket_no_upscale": False,
    "bucket_reso_steps": 64,
    "cache_latents": True,
    "cache_latents_to_disk": False,
    "caption_dropout_every_n_epochs": 0.0,
    "caption_dropout_rate": 0.05,
    "caption_extension": ".txt",
    "clip_skip": "1",
    "conv_alpha": 4,
    "conv_dim": 8,
    "decompose_both": False,
    "down_lr_weight": "",
    "enable_bucket": True,
    "epoch": 6,
    "factor": -1,
    "full_fp16": False,
    "gradient_accumulation_steps": 1.0,
    "guidance_scale": 3.5,
    "keep_tokens": "0",
    "learning_rate": 0.0001,
    "logging_dir": "./logs",
    "lr_scheduler": "cosine",
    "lr_scheduler_num_cycles": "",
    "lr_warmup": 10,
    "max_data_loader_n_workers": "0",
    "max_resolution": "512,512",
    "max_token_length": "75",
    "max_train_epochs": "",
    "max_train_steps": "600",
    "mem_eff_attn": False,
    "min_snr_gamma": 0,
    "mixed_precision": "fp16",
    "model_list": "custom",
    "module_dropout": 0,
    "multires_noise_discount": 0,
    "multires_noise_iterations": 0,
    "network_alpha": 8,
    "network_dim": 16,
    "network_dropout": 0,
    "no_token_padding": False,
    "noise_offset": 0.05,
    "noise_offset_type": "Original",
    "num_cpu_threads_per_process": 2,
    "optimizer": "AdamW",
    "optimizer_args": "",
    "output_name": "gui_lora",
    "persistent_data_loader_workers": False,
    "prior_loss_weight": 1.0,
    "rank_dropout": 0,
    "reg_data_dir": "",
    "sample_every_n_steps": 100,
    "sample_prompts": "a painting of a lighthouse\na lighthouse at night",
    "sample_sampler": "euler_a",
    "save_every_n_epochs": 1,
    "save_every_n_steps": 0,
    "save_last_n_steps": 0,
    "save_model_as": "safetensors",
    "save_precision": "fp16",
    "save_state": False,
    "scale_weight_norms": 0,
    "sd3_checkbox": False,
    "sd3_t5xxl": "",
    "sdxl": False,
    "sdxl_no_half_vae": True,
    "seed": "1234",
    "shuffle_caption": True,
    "text_encoder_lr": 5e-05,
    "train_batch_size": 2,
    "training_comment": "",
    "unet_lr": 0.0001,
    "unit": 1,
    "use_wandb": False,
    "v2": False,
    "v_parameterization": False,
    "vae": "",
    "wandb_api_key": "",
    "xformers": "xformers",
}


def _gui(tmp_path: Path, **changes) -> Path:
    given = {
        **GUI_JSON,
        "pretrained_model_name_or_path": str(tmp_path / "base.safetensors"),
        "train_data_dir": str(tmp_path / "img"),
        "output_dir": str(tmp_path / "out"),
        **changes,
    }
    path = tmp_path / "gui.json"
    path.write_text(json.dumps(given, indent=2), encoding="utf-8")
    return path


def test_a_kohya_ss_gui_json_builds_the_config_it_means(tmp_path):
    cfg = load_config(_gui(tmp_path))
    net, train = cfg.network, cfg.train
    assert (net.network_type, net.lora_rank, net.lora_alpha) == ("lora", 16, 8.0)
    assert (net.conv_rank, net.conv_alpha, net.train_text_encoder) == (8, 4.0, True)  # Kohya LoCon; GUI's TE
    assert (train.learning_rate, train.text_encoder_lr) == (1e-4, 5e-5)
    assert (train.epochs, train.max_train_steps, train.lr_warmup_steps) == (6, 600, 60)  # 10% of 600 steps
    assert (train.cache_latents, train.min_snr_gamma, train.max_token_length) == ("memory", None, None)
    assert (train.noise_offset, train.multires_noise_iterations, train.num_threads) == (0.05, 0, 2)
    assert (train.optimizer_args, train.seed, train.clip_skip) == ([], 1234, 1)
    assert (cfg.data.resolution, cfg.data.caption_extension, cfg.output.save_state) == (512, ".txt", False)
    assert cfg.sample.sample_prompts == ["a painting of a lighthouse", "a lighthouse at night"]


def test_the_gui_passes_on_its_lycoris_fields_and_noise_of_one_kind(tmp_path):
    cfg = load_config(
        _gui(
            tmp_path,
            LoRA_type="LyCORIS/LoKr",
            conv_dim=0,
            noise_offset_type="Multires",
            multires_noise_iterations=8,
            multires_noise_discount=0.2,
            text_encoder_lr=0,
            optimizer_args="d0=1e-5 d_coef=1.0",
        )
    )
    net, train = cfg.network, cfg.train
    assert (net.network_type, net.conv_rank, net.conv_alpha) == (
        "lokr",
        16,
        4.0,
    )  # LyCORIS: conv_dim 0 -> dim
    assert net.train_text_encoder is False  # text_encoder_lr 0 with unet_lr set: the UNet only
    assert (train.noise_offset, train.multires_noise_iterations, train.multires_noise_discount) == (
        0.0,
        8,
        0.2,
    )
    assert train.optimizer_args == ["d0=1e-5", "d_coef=1.0"]


def test_unknown_network_args_are_named_in_one_sentence(tmp_path):
    args = '["conv_dim=4", "foo=1", "algo=lokr", "bar=x"]'
    text = 'pretrained_model_name_or_path = "m.safetensors"\ntrain_data_dir = "d"\n'
    path = tmp_path / "c.toml"
    path.write_text(text + f'network_module = "lycoris.kohya"\nnetwork_args = {args}\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith("Key 'network_args' in ") and "c.toml has entries 'foo', 'bar' that" in message
    assert message.count(". ") == 1 and "\n" not in message  # the sentence, then what to do


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"network_module": "networks.dylora"}, ["'network_module'", "networks.dylora", "network_type"]),
        (
            {"network_module": "networks.lora", "network_args": ["algo=loha"]},
            ["'network_args'", "algo=loha", "only LyCORIS reads", "lycoris.kohya"],
        ),
        (
            {"network_module": "lycoris.kohya", "network_args": ["algo=ia3"]},
            ["'network_args'", "algo=ia3", "lora, locon, loha, lokr or dora"],
        ),
        ({"network_args": ["rank_dropout=0.1"]}, ["'network_args'", "rank_dropout=0.1", "not implemented"]),
        ({"network_dropout": 0.1}, ["'network_dropout'", "0.1", "lora_dropout"]),
        ({"network_train_text_encoder_only": True}, ["always trains the UNet", "train_text_encoder"]),
        ({"resolution": "1024,768"}, ["'resolution'", "'1024,768'", "not square"]),
        ({"save_model_as": "ckpt"}, ["'save_model_as'", "'ckpt'", ".safetensors"]),
        ({"text_encoder_lr": [1e-5, 2e-5]}, ["'text_encoder_lr'", "share one text_encoder_lr"]),
        ({"unet_lr": 0}, ["'unet_lr'", "trains only the text encoder"]),
        ({"lr_warmup_steps": 0.1}, ["'lr_warmup_steps'", "fraction of all steps"]),
        ({"LoRA_type": "LyCORIS/LoKr", "lr_warmup": 5}, ["'lr_warmup'", "lr_warmup_steps: N"]),
        ({"LoRA_type": "Kohya DyLoRA"}, ["'LoRA_type'", "Kohya DyLoRA", "network_type"]),
        ({"log_with": "wandb"}, ["'log_with'", "'wandb'", "TensorBoard only"]),
        ({"dataset_config": "no_such_dataset.toml"}, ["'dataset_config'", "no such file"]),
        (
            {"sample_prompts": "a cat --n blurry --w 512"},
            ["per-prompt option --n", "set sample_negative_prompt instead"],
        ),
        ({"t5xxl": "t5.safetensors"}, ["'t5xxl'", "FLUX/SD3"]),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_ours(raw, words):
    with pytest.raises(ConfigError) as err:
        build_config({"base_model": "m.safetensors", "train_data_dir": "d", **raw})
    message = str(err.value)
    assert all(word in message for word in words), message
    assert "\n" not in message


def test_what_kohya_leaves_out_means_kohyas_default(caplog):
    with caplog.at_level(logging.INFO, logger="lora_scripts.config"):
        cfg = build_config(
            {"base_model": "m.safetensors", "train_data_dir": "d", "network_module": "networks.lora"}
        )
    assert (cfg.network.network_type, cfg.network.lora_rank, cfg.network.lora_alpha) == ("lora", 4, 1.0)
    assert (cfg.train.learning_rate, cfg.train.max_train_steps) == (2e-6, 1600)
    assert (cfg.data.enable_bucket, cfg.data.caption_extension) == (False, ".caption")
    assert (cfg.output.save_precision, cfg.network.train_text_encoder) == ("float", True)
    assert "kohya's defaults for keys the config leaves out" in caplog.text
    unet_only = build_config(
        {
            "base_model": "m.safetensors",
            "train_data_dir": "d",
            "network_module": "networks.lora",
            "network_args": ["conv_dim=4"],
            "text_encoder_lr": 0,
        }
    )
    assert unet_only.network.train_text_encoder is False
    assert (unet_only.network.conv_rank, unet_only.network.conv_alpha) == (
        4,
        1.0,
    )  # networks/lora.py's default


def test_a_misspelt_kohya_key_suggests_kohyas_name():
    with pytest.raises(ConfigError, match="Unknown key 'network_modul'.*Did you mean 'network_module'"):
        build_config({"base_model": "m.safetensors", "train_data_dir": "d", "network_modul": "networks.lora"})


def test_lycoris_dora_and_presets():
    base = {"base_model": "m.safetensors", "train_data_dir": "d", "network_module": "lycoris.kohya"}
    dora = build_config({**base, "network_dim": 8, "network_args": ["algo=locon", "dora_wd=True"]}).network
    assert (dora.network_type, dora.conv_rank) == ("dora", 8)
    attn = build_config({**base, "network_args": {"algo": "lokr", "preset": "attn-mlp", "conv_dim": 8}})
    assert (attn.network.network_type, attn.network.conv_rank) == ("lokr", None)
    unet = build_config({**base, "network_args": "preset=unet-transformer-only"}).network
    assert (unet.network_type, unet.conv_rank, unet.train_text_encoder) == ("lora", None, False)


def test_an_override_of_ours_wins_over_what_kohyas_keys_make(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "base_model: m.safetensors\ntrain_data_dir: d\ncache_latents: true\ncache_latents_to_disk: true\n"
    )
    assert load_config(path).train.cache_latents == "disk"
    assert load_config(path, ["cache_latents=false"]).train.cache_latents == "no"
    path.write_text("base_model: m.safetensors\ntrain_data_dir: d\nprediction_type: epsilon\n")
    assert load_config(path, ["v_parameterization=true"]).model.prediction_type == "v_prediction"


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("dup.toml", "[a]\nseed = 1\n[b]\nseed = 2\n", ["'seed' is set twice", "[a]", "[b]"]),
        ("bad.toml", "seed = = 1\n", ["is not valid TOML", "line 1"]),
        ("dup.json", '{"seed": 1, "seed": 2}', ["'seed' is set twice"]),
        ("bad.json", '{"seed": 1,\n}', ["is not valid JSON at line 2"]),
    ],
)
def test_a_toml_or_json_file_that_cannot_be_read_says_where(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert all(word in str(err.value) for word in words), str(err.value)


# train_network.py's arguments (sd-scripts train_util.py, train_network.py, custom_train_functions.py)
KOHYA_ARGUMENTS = """
adaptive_noise_scale alpha_mask async_upload base_weights base_weights_multiplier blocks_to_swap
bucket_no_upscale bucket_reso_steps cache_info cache_latents cache_latents_to_disk
cache_text_encoder_outputs cache_text_encoder_outputs_to_disk caption_dropout_every_n_epochs
caption_dropout_rate caption_extension caption_extention caption_prefix caption_separator caption_suffix
caption_tag_dropout_rate clip_skip color_aug conditioning_data_dir config_file cpu_offload_checkpointing
dataset_class dataset_config dataset_repeats ddp_gradient_as_bucket_view ddp_static_graph ddp_timeout
debiased_estimation_loss debug_dataset dim_from_weights disable_mmap_load_safetensors dynamo_backend
enable_bucket enable_wildcard face_crop_aug_range flip_aug fp8_base fp8_base_unet full_bf16 full_fp16
fused_backward_pass gradient_accumulation_steps gradient_checkpointing highvram huber_c huber_scale
huber_schedule huggingface_path_in_repo huggingface_repo_id huggingface_repo_type
huggingface_repo_visibility huggingface_token in_json initial_epoch initial_step ip_noise_gamma
ip_noise_gamma_random_strength keep_tokens keep_tokens_separator learning_rate log_config log_prefix
log_tracker_config log_tracker_name log_with logging_dir logit_mean logit_std loss_type lowram
lr_decay_steps lr_scheduler lr_scheduler_args lr_scheduler_min_lr_ratio lr_scheduler_num_cycles
lr_scheduler_power lr_scheduler_timescale lr_scheduler_type lr_warmup_steps masked_loss max_bucket_reso
max_data_loader_n_workers max_grad_norm max_timestep max_token_length max_train_epochs max_train_steps
max_validation_steps mem_eff_attn min_bucket_reso min_snr_gamma min_timestep mixed_precision mode_scale
multires_noise_discount multires_noise_iterations network_alpha network_args network_dim network_dropout
network_module network_train_text_encoder_only network_train_unet_only network_weights no_half_vae
no_metadata noise_offset noise_offset_random_strength optimizer_args optimizer_type output_config
output_dir output_name persistent_data_loader_workers pretrained_model_name_or_path prior_loss_weight
random_crop reg_data_dir resize_interpolation resolution resume resume_from_huggingface sample_at_first
sample_every_n_epochs sample_every_n_steps sample_prompts sample_sampler save_every_n_epochs
save_every_n_steps save_last_n_epochs save_last_n_epochs_state save_last_n_steps save_last_n_steps_state
save_model_as save_n_epoch_ratio save_precision save_state save_state_on_train_end
save_state_to_huggingface scale_v_pred_loss_like_noise_pred scale_weight_norms sdpa secondary_separator
seed shuffle_caption skip_cache_check skip_until_initial_step text_encoder_batch_size text_encoder_lr
token_warmup_min token_warmup_step tokenizer_cache_dir torch_compile train_batch_size train_data_dir
training_comment unet_lr use_8bit_adam use_lion_optimizer use_safetensors v2 v_parameterization
v_pred_like_loss vae vae_batch_size validate_every_n_epochs validate_every_n_steps validation_seed
validation_split wandb_api_key wandb_run_name weighted_captions weighting_scheme xformers
zero_terminal_snr
""".split()


def test_every_train_network_argument_is_read_and_documented():
    owners = key_to_section()
    docs = (Path(__file__).parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    unread = [k for k in KOHYA_ARGUMENTS if k not in owners and k not in ALIASES and rule_for(k) is None]
    undocumented = [k for k in KOHYA_ARGUMENTS if f"| `{k}` |" not in docs]
    assert not unread and not undocumented, (unread, undocumented)
