"""One LoRA per output_dir: report.html, loss.png, samples/ and state/ carry no name, so a second LoRA name
in the same folder is refused before anything is written, and the first LoRA's files stay as they were."""

from __future__ import annotations

import yaml


def _config(tmp_path, cfg: dict, name: str):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_a_second_lora_name_in_one_output_dir_is_refused_and_the_first_is_kept(base_config, tmp_path, cli):
    out = tmp_path / "outputs"
    cfg = {
        **base_config,
        "output_dir": str(out),
        "output_name": "tech_phone",
        "max_train_steps": 1,
        "doctor": "off",
        "sample_prompts": ["a phone"],
        "sample_every_n_steps": 1,
        "sample_steps": 2,
    }
    first = cli("train", "--config", str(_config(tmp_path, cfg, "a.yaml")))
    assert first.returncode == 0, first.stderr
    kept = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "train.log"}
    assert out / "report.html" in kept and any(p.parent.name == "samples" for p in kept)

    second = cli("train", "--config", str(_config(tmp_path, {**cfg, "output_name": "laptop_neon"}, "b.yaml")))
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert "holds the training files of another LoRA, 'tech_phone'" in second.stderr
    assert f"output_dir: {out / 'laptop_neon'}" in second.stderr.replace("\n", "")
    assert {p: p.read_bytes() for p in kept} == kept
    assert not (out / "laptop_neon.safetensors").exists()

    # the same LoRA again (overwrite) and the other one in the folder named in the hint both train
    again = cli("train", "--config", str(_config(tmp_path, {**cfg, "overwrite": True}, "a2.yaml")))
    assert again.returncode == 0, again.stderr
    own = {**cfg, "output_name": "laptop_neon", "output_dir": str(out / "laptop_neon")}
    other = cli("train", "--config", str(_config(tmp_path, own, "b2.yaml")))
    assert other.returncode == 0, other.stderr
    assert (out / "laptop_neon" / "laptop_neon.safetensors").is_file()
