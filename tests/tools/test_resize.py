"""`lora resize`: a known low-rank delta survives at its rank; energy mode; what the report and file say."""

import json
import re

import pytest
import torch

from lora_scripts.errors import ConfigError, OutputError
from lora_scripts.inject.lora import LoraWeights
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.tools.lora_io import read_lora
from lora_scripts.tools.lowrank import delta, rank_of
from lora_scripts.tools.resize import run_resize


def _padded(parts, extra=4, seed=0):
    """Each rank-r LoRA re-stored at rank r+extra with the same delta (its true rank stays r)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for component, modules in parts.items():
        out[component] = {}
        for path, w in modules.items():
            r = rank_of(w)
            mix = torch.randn(r + extra, r, generator=gen)
            down = (mix @ w.down.flatten(1)).reshape(r + extra, *w.down.shape[1:])
            up = (w.up.flatten(1) @ torch.linalg.pinv(mix)).reshape(w.up.shape[0], r + extra, *w.up.shape[2:])
            out[component][path] = LoraWeights(down=down, up=up, alpha=float(r + extra) * w.alpha / r)
    return out


def _deltas(parts):
    return {kohya_name(c, p): delta(w) for c, modules in parts.items() for p, w in modules.items()}


def test_resize_to_the_true_rank_is_lossless(loras, tmp_path):
    known = loras.parts(rank=3, alpha=1, every=3)
    src = loras.save(_padded(known), tmp_path / "big.safetensors", {**loras.meta, "ss_network_dim": "7"})
    assert {rank_of(w) for w in read_lora(src).modules.values()} == {7}
    kept = run_resize(src, tmp_path / "small.safetensors", rank=3, energy=None)
    result = read_lora(tmp_path / "small.safetensors")
    want = _deltas(known)
    assert result.modules.keys() == want.keys() and result.dtypes == {"float32"}  # auto: as the input
    for name, w in result.modules.items():
        assert rank_of(w) == 3 and w.alpha == 3.0
        assert float((delta(w) - want[name]).norm() / want[name].norm()) < 1e-4, name
        assert kept[name].energy > 1 - 1e-6
    meta = result.metadata
    assert meta["ss_network_dim"] == "3" and meta["ss_network_alpha"] == "3"
    assert "rank 7 -> 3" in meta["ss_training_comment"] and meta["ss_output_name"] == "neon"
    assert len(meta["sshs_model_hash"]) == 64


def test_energy_mode_picks_per_module_ranks(loras, tmp_path):
    src = loras.save(_padded(loras.parts(rank=2, every=5)), tmp_path / "in.safetensors")
    kept = run_resize(src, tmp_path / "out.safetensors", rank=None, energy=0.999999, precision="fp16")
    result = read_lora(tmp_path / "out.safetensors")
    assert result.dtypes == {"float16"} and result.metadata["ss_network_dim"] == "Dynamic"
    assert {k.rank_out for k in kept.values()} == {2}
    assert {rank_of(w) for w in result.modules.values()} == {2}


def test_cli_resize_reports_what_was_kept(loras, tmp_path, cli):
    parts = loras.parts(rank=4, every=4)
    src = loras.save(
        parts, tmp_path / "in.safetensors", {**loras.meta, "ss_network_args": '{"conv_dim": "4"}'}
    )
    out = tmp_path / "[v2]out" / "r2.safetensors"  # brackets: a folder name, not rich markup
    result = cli("lora", "resize", str(src), "-o", str(out), "--rank", "2", "--conv-rank", "1")
    assert result.returncode == 0, result.stderr
    assert f"ResizedLoRAsaved:{out}" in "".join(result.stdout.split())  # (rich may wrap a long path)
    assert "energy kept" in result.stdout and "UNet down" in result.stdout and "TE" in result.stdout
    lora = read_lora(out)
    conv = [w for w in lora.modules.values() if w.down.ndim == 4 and w.down.shape[2] == 3]
    assert conv and {rank_of(w) for w in conv} == {1}
    assert {rank_of(w) for w in lora.modules.values()} == {1, 2}
    assert json.loads(lora.metadata["ss_network_args"])["conv_dim"] == "1"
    # the same command again refuses to overwrite, unless asked
    before = out.read_bytes()
    with pytest.raises(OutputError, match="already exists. Pass --overwrite"):
        run_resize(src, out, rank=3, energy=None)
    assert out.read_bytes() == before
    run_resize(src, out, rank=3, energy=None, overwrite=True)
    assert {rank_of(w) for w in read_lora(out).modules.values()} == {3}


def test_bad_targets_are_sentences(loras, tmp_path):
    src = loras.save(loras.parts(rank=2, every=20), tmp_path / "in.safetensors")
    for rank, energy, words in (
        (None, None, "exactly one"),
        (2, 0.9, "exactly one"),
        (0, None, "at least 1"),
        (None, 1.5, "in (0, 1]"),
    ):
        with pytest.raises(ConfigError, match=re.escape(words)):
            run_resize(src, tmp_path / "out.safetensors", rank=rank, energy=energy)
    assert not (tmp_path / "out.safetensors").exists()
