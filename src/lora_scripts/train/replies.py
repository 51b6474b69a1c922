"""Chat samples during training: each sample prompt's base and LoRA reply, saved as JSON beside the image
samples' place (samples/stepNNNNNN.json), logged to TensorBoard as text and shown in report.html."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..save.atomic import atomic_write_text

log = logging.getLogger(__name__)


def save_replies(requests, pairs: list[tuple[str, str]], path: Path) -> Path:
    rows = [
        {"prompt": r.prompt, "base": base, "lora": lora}
        for r, (base, lora) in zip(requests, pairs, strict=True)
    ]
    return atomic_write_text(json.dumps(rows, ensure_ascii=False, indent=1), path)


def read_replies(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def replies_to_tensorboard(accelerator, requests, pairs: list[tuple[str, str]], step: int) -> None:
    tracker = next((t for t in accelerator.trackers if t.name == "tensorboard"), None)
    if tracker is None:
        return
    try:
        for i, (r, (base, lora)) in enumerate(zip(requests, pairs, strict=True)):
            text = f"**{r.prompt}**\n\nbase: {base}\n\nLoRA: {lora}"
            tracker.tracker.add_text(f"samples/{i:02d}", text, step)
    except (OSError, RuntimeError, ValueError) as exc:
        log.warning("Sample replies at step %d were saved but not added to TensorBoard (%s)", step, exc)
