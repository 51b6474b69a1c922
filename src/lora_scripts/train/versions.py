"""Re-training never destroys the LoRA it continues from: `init_lora` + the same name -> the next version.

Adding `init_lora: output/tech_phone/tech_phone.safetensors` to the config that made it used to stop with
"already exists", and `overwrite: true` then replaced v1 and its report. Now such a run becomes
`output/tech_phone_v2/tech_phone_v2.safetensors` with its own report, samples, log and states; an
interrupted v2 (no final file yet) is continued, not skipped, so `resume: auto` works for it too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..config import Config

log = logging.getLogger(__name__)
VERSION = re.compile(r"^(?P<base>.+?)_v(?P<n>\d+)$")


def as_new_version(cfg: Config) -> Config:
    """`cfg` itself, or a copy naming the next version when it would overwrite or replace its init_lora."""
    out, init = cfg.output, cfg.network.init_lora
    if not init:
        return cfg
    suffix = "" if cfg.llm is not None else ".safetensors"  # the LLM route writes a PEFT adapter folder
    parent = Path(init).expanduser()
    stem = parent.name.removesuffix(suffix) if suffix else parent.name
    match = VERSION.match(stem)
    base, n = (match["base"], int(match["n"]) + 1) if match else (stem, 2)
    target = out.output_dir / f"{out.name()}{suffix}"
    same_file = target.resolve() == parent.resolve()
    lineage = out.output_name in (None, base, stem)
    if not same_file and not (target.exists() and lineage):
        return cfg  # a new file, or a name the user chose on purpose: their call (overwrite rules apply)
    root = out.output_dir.parent if out.output_dir.name in (base, stem) else out.output_dir
    while (root / f"{base}_v{n}" / f"{base}_v{n}{suffix}").exists():
        n += 1
    name = f"{base}_v{n}"
    log.info(
        "Continuing %s as a new version: %s (the original is kept; set output_name to choose a name)",
        parent.name,
        root / name / f"{name}{suffix}",
    )
    output = out.model_copy(update={"output_dir": root / name, "output_name": name, "overwrite": False})
    return cfg.model_copy(update={"output": output})
