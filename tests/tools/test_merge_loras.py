"""`lora merge-loras`: the exact concatenation equals the weighted sum; SVD to a rank; mixed files refused."""

import json
from pathlib import Path

import pytest
import torch

from lora_scripts.errors import ConfigError, FormatError
from lora_scripts.save.kohya_keys import kohya_name
from lora_scripts.tools.lora_io import read_lora
from lora_scripts.tools.lowrank import rank_of
from lora_scripts.tools.merge_loras import parse_weighted, run_merge_loras


def _scaled_up_down(w, weight: float = 1.0) -> torch.Tensor:
    """weight * alpha / rank * up @ down, written out (kxk conv: a 1x1 up over a kxk down), in float64."""
    rank = w.down.shape[0]
    full = w.up.flatten(1).double() @ w.down.flatten(1).double()
    return (full * (weight * w.alpha / rank)).reshape(w.up.shape[0], *w.down.shape[1:])


def _deltas(parts, weight=1.0):
    return {
        kohya_name(c, p): _scaled_up_down(w, weight)
        for c, modules in parts.items()
        for p, w in modules.items()
    }


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture()
def two(loras, tmp_path):
    a = loras.parts(rank=4, alpha=2, seed=1, every=2)
    b = loras.parts(rank=2, alpha=1, seed=2, every=3, te=False)  # some modules of a, no text encoder
    meta_b = {**loras.meta, "ss_tag_frequency": json.dumps({"5_cat": {"cat": 4}})}
    return a, b, loras.save(a, tmp_path / "a.safetensors"), loras.save(b, tmp_path / "b.safetensors", meta_b)


def test_exact_merge_is_the_weighted_sum(two, tmp_path):
    a, b, path_a, path_b = two
    out = tmp_path / "ab.safetensors"
    assert run_merge_loras([f"{path_a}:0.7", f"{path_b}:-0.5"], out) == {}
    merged = read_lora(out)
    da, db = _deltas(a, 0.7), _deltas(b, -0.5)
    assert da.keys() - db.keys() and db.keys() - da.keys() and da.keys() & db.keys()  # a only, b only, both
    assert merged.modules.keys() == da.keys() | db.keys()
    for name, w in merged.modules.items():
        want = da.get(name, 0) + db.get(name, 0)
        assert _rel(_scaled_up_down(w), want) < 1e-6, name
        assert rank_of(w) == (4 if name in da else 0) + (2 if name in db else 0)
        assert w.alpha == 6  # one alpha for the file, the largest rank (diffusers reads one)
    meta = merged.metadata
    assert "a.safetensors x0.7 + b.safetensors x-0.5" in meta["ss_training_comment"]
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_network_dim"] == "6"
    assert set(json.loads(meta["ss_tag_frequency"])) == {"10_neon", "5_cat"}


def test_svd_merge_to_a_rank(two, tmp_path):
    a, b, path_a, path_b = two
    kept = run_merge_loras([str(path_a), str(path_b)], tmp_path / "r6.safetensors", rank=6)
    merged = read_lora(tmp_path / "r6.safetensors")
    da, db = _deltas(a), _deltas(b)
    assert da.keys() - db.keys() and db.keys() - da.keys() and da.keys() & db.keys()  # a only, b only, both
    want = {k: da.get(k, 0) + db.get(k, 0) for k in da.keys() | db.keys()}
    assert merged.modules.keys() == want.keys()
    for name, w in merged.modules.items():  # rank 6 holds a rank-4 + rank-2 sum exactly
        assert rank_of(w) <= 6 and _rel(_scaled_up_down(w), want[name]) < 1e-5, name
    assert min(k.energy for k in kept.values()) > 1 - 1e-6
    lossy = run_merge_loras([str(path_a), str(path_b)], tmp_path / "r1.safetensors", rank=1)
    assert {rank_of(w) for w in read_lora(tmp_path / "r1.safetensors").modules.values()} == {1}
    assert max(k.energy for k in lossy.values()) < 1


def test_loras_for_different_models_are_refused(loras, two, tmp_path):
    _, _, path_a, _ = two
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
    other = {"unet": {name: loras.random_lora((32, 1024), 4, torch.Generator())}}
    path_o = loras.save(other, tmp_path / "sd2.safetensors", {"ss_base_model_version": "sd_v2"})
    with pytest.raises(FormatError, match="SD 2.x LoRA"):
        run_merge_loras([str(path_a), str(path_o)], tmp_path / "x.safetensors")
    other = {"unet": {name: loras.random_lora((32, 96), 4, torch.Generator())}}  # no family has width 96
    unlabeled = loras.save(other, tmp_path / "wide.safetensors", {})
    with pytest.raises(FormatError, match=r"\[32, 64\] weight .* but a \[32, 96\] weight"):
        run_merge_loras([str(path_a), str(unlabeled)], tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_weight_syntax():
    assert parse_weighted("style.safetensors:0.7") == (Path("style.safetensors"), 0.7)
    assert parse_weighted("C:\\loras\\a.safetensors")[1] == 1.0
    with pytest.raises(ConfigError, match="not a weight"):
        parse_weighted("a.safetensors:strong")


def test_cli_merge_loras(two, tmp_path, cli):
    _, _, path_a, path_b = two
    out = tmp_path / "svd.safetensors"
    result = cli("lora", "merge-loras", f"{path_a}:0.5", str(path_b), "-o", str(out), "--energy", "0.9")
    assert result.returncode == 0, result.stderr
    assert "energy kept" in result.stdout and "Merged LoRA saved" in result.stdout
    assert read_lora(out).dtypes == {"float32"}
