"""Argument mistakes are named before anything else is judged (a bad weight is not 'too few files')."""

from __future__ import annotations


def test_merge_loras_names_a_weight_that_is_not_a_number(cli, tmp_path):
    proc = cli("lora", "merge-loras", "a.safetensors:abc", "-o", str(tmp_path / "x.safetensors"))
    assert proc.returncode == 2
    assert "'abc' in 'a.safetensors:abc' is not a weight" in proc.stderr
    assert "at least two" not in proc.stderr


def test_merge_names_a_bad_weight_before_the_existing_output(cli, tmp_path, tiny_model):
    out = tmp_path / "merged.safetensors"
    out.write_bytes(b"the user's file")
    proc = cli("lora", "merge", str(tiny_model["single_file"]), "s.safetensors:0,7", "-o", str(out))
    assert proc.returncode == 2 and "'0,7' in 's.safetensors:0,7' is not a weight" in proc.stderr
    assert out.read_bytes() == b"the user's file"
