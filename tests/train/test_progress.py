"""Progress events (lora_scripts/progress.py): what the web UI reads while a run goes."""

from __future__ import annotations

from lora_scripts.config import build_config
from lora_scripts.progress import FILE_NAME, ProgressLog, read_progress
from lora_scripts.train.run import run_training


def test_a_run_writes_start_steps_samples_and_end(base_config):
    cfg = build_config(
        {
            **base_config,
            "max_train_steps": 4,
            "sample_every_n_steps": 2,
            "sample_steps": 2,
            "sample_prompts": ["neon style, smartphone"],
        }
    )
    result = run_training(cfg)
    events = read_progress(cfg.output.output_dir / FILE_NAME)
    kinds = [e["event"] for e in events]
    assert kinds == ["start", "step", "step", "samples", "step", "step", "samples", "end"]
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4] and all(e["total"] == 4 for e in steps)
    assert [e["loss"] for e in steps] == [round(x, 6) for x in result.losses]
    assert steps[0]["eta_s"] is None and steps[-1]["eta_s"] == 0.0 and steps[1]["eta_s"] >= 0
    assert events[3]["files"] == ["step000002-00.png"]
    assert (cfg.output.output_dir / "samples" / events[3]["files"][0]).is_file()
    assert events[-1] == {**events[-1], "event": "end", "step": 4, "state": "done"}


def test_a_half_written_last_line_is_skipped(tmp_path):
    log = ProgressLog(tmp_path)
    log.event("start", step=0, total=2)
    with open(tmp_path / FILE_NAME, "a", encoding="utf-8") as handle:
        handle.write('{"event": "step", "st')
    assert [e["event"] for e in read_progress(tmp_path / FILE_NAME)] == ["start"]
    assert read_progress(tmp_path / "missing.jsonl") == []
