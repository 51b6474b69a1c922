"""Re-training with init_lora writes the next version beside the original and never replaces it; the
file, its report and the WebUI tag are named before training; inspect shows where a version came from."""

from __future__ import annotations

import json

import yaml

from lora_scripts.save.kohya import read_lora_file


def _config(tmp_path, cfg: dict, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_continuing_a_lora_writes_v2_and_keeps_v1(base_config, tmp_path, cli):
    out = tmp_path / "output" / "tech_phone"
    cfg = {
        **base_config,
        "output_dir": str(out),
        "output_name": "tech_phone",
        "max_train_steps": 2,
        "doctor": "off",
        "sample_prompts": ["a phone"],
        "sample_every_n_steps": 2,
        "sample_steps": 2,
    }
    first = cli("train", "--config", str(_config(tmp_path, cfg)))
    assert first.returncode == 0, first.stderr
    v1 = out / "tech_phone.safetensors"
    v1_bytes, v1_report = v1.read_bytes(), (out / "report.html").read_bytes()

    follow = {**cfg, "init_lora": str(v1)}
    follow.pop("lora_rank")
    dry = cli("train", "--config", str(_config(tmp_path, follow, "v2.yaml")), "--dry-run")
    v2 = tmp_path / "output" / "tech_phone_v2" / "tech_phone_v2.safetensors"
    assert dry.returncode == 0 and str(v2) in dry.stderr and "<lora:tech_phone_v2:0.7>" in dry.stderr
    second = cli("train", "--config", str(_config(tmp_path, follow, "v2.yaml")))
    assert second.returncode == 0, second.stderr
    assert v1.read_bytes() == v1_bytes and (out / "report.html").read_bytes() == v1_report
    assert (
        v2.is_file() and (v2.parent / "report.html").is_file() and list((v2.parent / "samples").glob("*.png"))
    )
    _, meta = read_lora_file(str(v2))
    _, meta1 = read_lora_file(str(v1))
    assert meta["ss_parent_lora"] == "tech_phone.safetensors"
    assert meta["ss_parent_lora_hash"] == meta1["sshs_model_hash"]
    assert meta["ss_output_name"] == "tech_phone_v2"

    third = cli("train", "--config", str(_config(tmp_path, {**follow, "init_lora": str(v2)}, "v3.yaml")))
    assert third.returncode == 0, third.stderr
    v3 = tmp_path / "output" / "tech_phone_v3" / "tech_phone_v3.safetensors"
    _, meta3 = read_lora_file(str(v3))
    assert meta3["ss_lineage"] == "tech_phone.safetensors > tech_phone_v2.safetensors"
    shown = cli("lora", "inspect", str(v3), "--json")
    assert shown.returncode == 0, shown.stderr
    facts = json.loads(shown.stdout)["facts"]
    assert facts["continued from"] == "tech_phone_v2.safetensors"


def test_every_run_names_its_file_and_webui_tag(base_config, tmp_path, cli):
    cfg = {**base_config, "output_name": "neon_glow", "max_train_steps": 1, "doctor": "off"}
    done = cli("train", "--config", str(_config(tmp_path, cfg)))
    assert done.returncode == 0, done.stderr
    assert "<lora:neon_glow:0.7>" in done.stderr
    log = (tmp_path / "out" / "train.log").read_text(encoding="utf-8")
    assert "Will write" in log and "<lora:neon_glow:0.7>" in log
