"""A resumed job's finished images against today's items: a row whose finished image would now come out
otherwise (prompt, negative prompt, LoRAs), go elsewhere (its file: the `by` value's folder) or not be made at
all (an emptied cell) is refused, not mixed in; new rows are simply made.

index.csv holds each image's prompt, LoRAs and file; each item's negative prompt is kept beside job.json in
negative_prompts.json. An output folder started before that file existed has none: its negative prompts are
taken as they are now, and compared from then on."""

from __future__ import annotations

import json

from ..errors import ConfigError
from .items import Work, lora_tags

FILE = "negative_prompts.json"
FACTS = ("prompt", "negative prompt", "LoRAs", "file")  # of one image, as compared
HINT = "Run with --new, set a new output_dir, or give the changed row a new id"


def check_unchanged(works: list[Work], failed: list[tuple[str, int, str]], done: dict, out) -> None:
    """`done`: index.csv's rows by (id, n); `failed`: the (id, n, reason) that cannot be made now; `out`: the
    job's output (store.py)."""
    for item_id, n, reason in failed:
        if (item_id, n) in done:
            raise ConfigError(
                f"The item '{item_id}' changed since its images were made, and now cannot be made ({reason})",
                "Put the value back, run with --new, or set a new output_dir",
            )
    negatives = read_negatives(out)
    for w in works:
        row = done.get((w.id, w.n))
        if row is None:
            continue
        was = (row["prompt"], negatives.get(w.id, w.spec.negative_prompt), row["loras"], row["file"])
        now = (w.spec.text, w.spec.negative_prompt, lora_tags(w.spec), w.file)
        for what, before, after in zip(FACTS, was, now, strict=True):
            if before != after:
                changed = f"{what} '{before}', now '{after}'"
                raise ConfigError(f"The item '{w.id}' changed since its images were made ({changed})", HINT)


def read_negatives(out) -> dict[str, str]:
    text = out.read_text(FILE)
    return json.loads(text) if text else {}


def remember_negatives(out, works: list[Work]) -> None:
    """Each planned item's negative prompt, before any of its images is made (after check_unchanged: a
    finished item's is the same). Items no longer in the file keep theirs, should they come back."""
    before = read_negatives(out)
    now = {**before, **{w.id: w.spec.negative_prompt for w in works}}
    if now != before:
        out.write_text(FILE, json.dumps(now, indent=0, ensure_ascii=False))
