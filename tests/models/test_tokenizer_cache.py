"""The offline CLIP tokenizer cache is built by whichever process needs it first: several processes building
it at once (--processes N, Ray workers on a fresh node) each finish with a complete, identical folder."""

from __future__ import annotations

import multiprocessing as mp

from lora_scripts.models.tokenizer import write_tokenizer_files


def _build(folder, barrier, results):
    barrier.wait()
    try:
        write_tokenizer_files(folder)
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test reports what went wrong in the child
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_building_the_cache_at_once_all_succeed(tmp_path):
    ctx = mp.get_context("spawn")
    reference = write_tokenizer_files(tmp_path / "one")
    for round_ in range(3):
        folder = tmp_path / f"shared{round_}"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_build, args=(folder, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert outcomes == ["ok"] * 6, outcomes
        assert sorted(f.name for f in folder.iterdir()) == [
            "merges.txt",
            "tokenizer_config.json",
            "vocab.json",
        ]
        for name in ("merges.txt", "tokenizer_config.json", "vocab.json"):
            assert (folder / name).read_bytes() == (reference / name).read_bytes()
