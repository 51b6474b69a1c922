"""The kohya training options a run used are in the LoRA's metadata under kohya's own ss_* names."""

from __future__ import annotations

from safetensors import safe_open

from lora_scripts.config import build_config, load_config
from lora_scripts.train.run import run_training


def _meta(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_the_options_of_the_run_are_recorded(base_config, tmp_path):
    options = {"min_snr_gamma": 5.0, "loss_type": "huber", "ip_noise_gamma": 0.1, "color_aug": True}
    lora = run_training(build_config({**base_config, **options, "max_train_steps": 1})).lora_path
    meta = _meta(lora)
    assert meta["ss_min_snr_gamma"] == "5" and meta["ss_loss_type"] == "huber"
    assert meta["ss_ip_noise_gamma"] == "0.1" and meta["ss_color_aug"] == "True"
    assert meta["ss_multires_noise_iterations"] == "0" and meta["ss_zero_terminal_snr"] == "False"


def test_kohyas_training_comment_is_written_and_inspect_shows_it(base_config, tmp_path, cli):
    """kohya's TOML key as kohya writes it: the comment lands in ss_training_comment, which A1111/ComfyUI
    and `lora inspect` show; without one, no such key is written (resize/merge append to an existing one)."""
    given = {**base_config, "max_train_steps": 1}
    lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in given.items()]
    comment = "trigger: neon style; CC-BY 4.0"
    path = tmp_path / "kohya.toml"
    path.write_text("\n".join([*lines, f'training_comment = "{comment}"']) + "\n")
    lora = run_training(load_config(path)).lora_path
    assert _meta(lora)["ss_training_comment"] == comment
    shown = cli("lora", "inspect", str(lora))
    assert shown.returncode == 0, shown.stderr
    assert comment in shown.stdout and "comment" in shown.stdout
    plain_config = {**base_config, "max_train_steps": 1, "output_name": "plain"}
    plain_config["output_dir"] = str(tmp_path / "plain")  # one folder per LoRA
    plain = run_training(build_config(plain_config))
    assert "ss_training_comment" not in _meta(plain.lora_path)
