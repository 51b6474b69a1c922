"""`model_family` forces the family when detection cannot be trusted (a hub id is not read before it loads):
sdxl is one of the choices, the family's defaults follow the forced family, and a base model that is not of
that family is one sentence, not a traceback."""

from __future__ import annotations

import yaml


def _config(tmp_path, base, **extra) -> str:
    path = tmp_path / "c.yaml"
    body = {
        "base_model": str(base),
        "train_data_dir": str(tmp_path / "img"),
        "output_dir": str(tmp_path / "out"),
    }
    path.write_text(yaml.safe_dump({**body, "max_train_steps": 1, "device": "cpu", "doctor": "off", **extra}))
    return str(path)


def test_a_forced_sdxl_family_sets_its_defaults_and_refuses_an_sd1_file(
    tiny_model, sample_data, tmp_path, cli
):
    (tmp_path / "img").symlink_to(sample_data)
    config = _config(tmp_path, tiny_model["single_file"], model_family="sdxl")
    dry = cli("train", "-c", config, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-1500:]
    shown = dry.stdout + dry.stderr
    assert "resolution: 1024" in shown and "SDXL base model: training at 1024 px" in shown
    done = cli("train", "-c", config)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the file is incomplete or not an SDXL model" in " ".join(done.stderr.split())
    assert not (tmp_path / "out").exists()
