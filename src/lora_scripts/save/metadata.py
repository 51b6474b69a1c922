"""kohya `ss_*` training metadata, Stability's `modelspec.*`, and the `sshs_*` hashes WebUI shows."""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save

from ..config import Config


@dataclass(frozen=True)
class NetworkFacts:
    """Rank and alpha as the saved layers have them (init_lora may differ from the config's defaults)."""

    dim: int
    alpha: float
    conv_dim: int | None = None
    conv_alpha: float | None = None


@dataclass
class RunFacts:
    """What happened in a run, beyond the config: filled in by the trainer."""

    family: str
    family_facts: dict[str, str] = field(default_factory=dict)  # base version, modelspec architecture...
    batch_size: int = 1  # as resolved (batch_size: auto)
    mixed_precision: str = "no"  # what ran (fp16 falls back on CPU)
    network: NetworkFacts | None = None  # rank/alpha of the saved layers; None: the config's
    lineage: dict[str, str] = field(default_factory=dict)  # the LoRA this one continued (init_lora)
    validation: dict[str, str] = field(default_factory=dict)  # latest held-out loss and its step
    steps: int = 0
    epoch: int = 0
    num_images: int = 0
    num_samples: int = 0
    started_at: float = field(default_factory=time.time)
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)  # subset folder -> tag -> images
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # subset folder -> repeats, images
    reg_dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # the same of reg_data_dir
    num_reg_samples: int = 0  # regularisation images, each counted once per repeat (kohya's num_reg_images)
    buckets: dict[str, int] = field(default_factory=dict)


def build_metadata(cfg: Config, facts: RunFacts) -> dict[str, str]:
    net, tr, data = cfg.network, cfg.train, cfg.data
    shape = facts.network or NetworkFacts(net.lora_rank, net.alpha, net.conv_rank, net.conv_alpha_value)
    args = {}
    if shape.conv_dim:
        args = {"conv_dim": str(shape.conv_dim), "conv_alpha": _num(shape.conv_alpha)}
    lycoris = _lycoris_args(net.network_type, bool(shape.conv_dim))
    meta = {
        **{k: v for k, v in facts.family_facts.items() if k.startswith("ss_")},
        "ss_network_module": "lycoris.kohya" if lycoris else "networks.lora",
        "ss_network_dim": str(shape.dim),
        "ss_network_alpha": _num(shape.alpha),
        "ss_network_args": json.dumps({**lycoris, **args}),
        "ss_network_dropout": _num(net.lora_dropout),
        "ss_scale_weight_norms": _num(net.scale_weight_norms) if net.scale_weight_norms else "None",
        "ss_output_name": cfg.output.name(),
        "ss_sd_model_name": str(cfg.model.base_model).replace("\\", "/").rsplit("/", 1)[-1],
        "ss_training_started_at": str(facts.started_at),
        "ss_training_finished_at": str(time.time()),
        "ss_steps": str(facts.steps),
        "ss_epoch": str(facts.epoch),
        "ss_max_train_steps": str(tr.max_train_steps or 0),
        "ss_num_train_images": str(facts.num_samples),
        "ss_learning_rate": _num(tr.learning_rate),
        "ss_unet_lr": _num(tr.learning_rate),
        "ss_text_encoder_lr": _num(tr.te_lr) if net.train_text_encoder else "None",
        "ss_network_train_unet_only": str(not net.train_text_encoder),
        "ss_lr_scheduler": tr.lr_scheduler,
        "ss_lr_warmup_steps": str(tr.lr_warmup_steps),
        "ss_optimizer": tr.optimizer,
        "ss_batch_size_per_device": str(facts.batch_size),
        "ss_gradient_accumulation_steps": str(tr.gradient_accumulation_steps),
        "ss_mixed_precision": facts.mixed_precision,
        "ss_gradient_checkpointing": str(tr.gradient_checkpointing),
        "ss_seed": str(tr.seed),
        "ss_noise_offset": _num(tr.noise_offset),
        "ss_resolution": f"({data.resolution}, {data.resolution})",
        "ss_enable_bucket": str(data.enable_bucket),
        "ss_bucket_info": json.dumps({"buckets": facts.buckets}),
        "ss_shuffle_caption": str(data.shuffle_caption),
        "ss_keep_tokens": str(data.keep_tokens),
        "ss_caption_dropout_rate": _num(data.caption_dropout_rate),
        "ss_flip_aug": str(data.flip_aug),
        "ss_cache_latents": str(tr.cache_latents != "no"),
        "ss_tag_frequency": json.dumps(facts.tag_frequency, ensure_ascii=False),
        "ss_dataset_dirs": json.dumps(facts.dataset_dirs or _one_dir(data, facts), ensure_ascii=False),
        "ss_reg_dataset_dirs": json.dumps(facts.reg_dataset_dirs, ensure_ascii=False),
        "ss_num_reg_images": str(facts.num_reg_samples),
    }
    if cfg.model.vae:  # kohya names the VAE file (ss_vae_name), without its folder
        meta["ss_vae_name"] = str(cfg.model.vae).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    meta.update(_kohya_options(tr, data))
    meta.update(_modelspec(cfg, facts))
    meta.update(comment_facts(cfg))
    meta.update(facts.lineage)
    meta.update(facts.validation)
    return meta


def _one_dir(data, facts: RunFacts) -> dict[str, dict[str, int]]:
    """ss_dataset_dirs when the run did not name its subsets: the training folder as one."""
    return {str(data.train_data_dir.name): {"n_repeats": data.num_repeats, "img_count": facts.num_images}}


def _lycoris_args(network_type: str, convs: bool) -> dict[str, str]:
    """The network_args kohya records for a LyCORIS network (its module is then lycoris.kohya), as the
    strings `--network_args key=value` gives; {} for kohya's own networks.lora."""
    if network_type in ("loha", "lokr"):
        return {"algo": network_type}
    if network_type == "dora":  # LyCORIS's LoRA/LoCon with weight decomposition, per input column
        return {"algo": "locon" if convs else "lora", "dora_wd": "True", "wd_on_output": "False"}
    return {}


def _kohya_options(tr, data) -> dict[str, str]:
    """The training options kohya's train_network.py records, under its key names (None when unset)."""
    values = {
        "ss_min_snr_gamma": tr.min_snr_gamma,
        "ss_adaptive_noise_scale": tr.adaptive_noise_scale,
        "ss_multires_noise_iterations": tr.multires_noise_iterations,
        "ss_multires_noise_discount": tr.multires_noise_discount,
        "ss_ip_noise_gamma": tr.ip_noise_gamma,
        "ss_debiased_estimation": tr.debiased_estimation_loss,
        "ss_zero_terminal_snr": tr.zero_terminal_snr,
        "ss_loss_type": tr.loss_type,
        "ss_huber_schedule": tr.huber_schedule,
        "ss_huber_c": tr.huber_c,
        "ss_clip_skip": tr.clip_skip,
        "ss_max_token_length": tr.max_token_length,
        "ss_min_timestep": tr.min_timestep,
        "ss_max_timestep": tr.max_timestep,
        "ss_loraplus_lr_ratio": tr.loraplus_lr_ratio,
        "ss_color_aug": data.color_aug,
        "ss_random_crop": data.random_crop,
        "ss_caption_tag_dropout_rate": data.caption_tag_dropout_rate,
        "ss_prior_loss_weight": data.prior_loss_weight,
        "ss_bucket_no_upscale": data.bucket_no_upscale,
    }
    return {k: _num(v) if isinstance(v, float) else str(v) for k, v in values.items()}


def comment_facts(cfg: Config) -> dict[str, str]:
    """The config's training_comment under kohya's key (A1111/ComfyUI show it), when one is given."""
    comment = cfg.output.training_comment
    return {"ss_training_comment": comment} if comment else {}


def lineage_facts(parent: str) -> dict[str, str]:
    """ss_ keys naming the LoRA a run continued from and its hash (WebUI's sshs_model_hash), so a
    version's history can be followed with `lora inspect`."""
    from .kohya import read_lora_file
    from .peft_adapter import WEIGHTS_FILE

    folder = Path(parent).expanduser()  # a PEFT adapter folder (LLM route): its weights file
    source = str(folder / WEIGHTS_FILE) if folder.is_dir() else parent
    tensors, meta = read_lora_file(source, what="init_lora")
    model_hash = meta.get("sshs_model_hash") or add_hashes(tensors, meta)["sshs_model_hash"]
    facts = {
        "ss_parent_lora": parent.replace("\\", "/").rsplit("/", 1)[-1],
        "ss_parent_lora_hash": model_hash,
    }
    if meta.get("ss_parent_lora"):
        facts["ss_lineage"] = (
            f"{meta.get('ss_lineage') or meta['ss_parent_lora']} > {facts['ss_parent_lora']}"
        )
    if meta.get("ss_steps"):
        facts["ss_parent_lora_steps"] = meta["ss_steps"]
    return facts


def _modelspec(cfg: Config, facts: RunFacts) -> dict[str, str]:
    reso = cfg.data.resolution
    return {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.implementation": "diffusers",
        "modelspec.title": cfg.output.name(),
        "modelspec.resolution": f"{reso}x{reso}",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(facts.started_at)),
        **{k: v for k, v in facts.family_facts.items() if k.startswith("modelspec.")},
    }


def add_hashes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, str]:
    """sshs_model_hash / sshs_legacy_hash as kohya computes them (WebUI's additional-networks hash):
    sha256 of the tensor bytes of the file saved with only the ss_* metadata."""
    blob = save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    header_len = int.from_bytes(blob[:8], "little")
    model_hash = hashlib.sha256(blob[8 + header_len :]).hexdigest()
    legacy = hashlib.sha256(io.BytesIO(blob).getbuffer()[0x100000:0x110000]).hexdigest()[:8]
    return {**metadata, "sshs_model_hash": model_hash, "sshs_legacy_hash": legacy}


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
