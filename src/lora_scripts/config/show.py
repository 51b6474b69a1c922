"""Config for people: the resolved YAML (`--dry-run`) and the Markdown reference in docs/config.md."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .root import ALIASES, SECTIONS, Config
from .route import IMAGE_ONLY, LLM_ONLY


def resolved_yaml(cfg: Config) -> str:
    """Flat `key: value` YAML with every default filled in, grouped by section; it loads back as the same
    config (the other route's keys are left out: a config sets one route's keys only)."""
    other = LLM_ONLY if cfg.route == "image" else IMAGE_ONLY
    lines = []
    for name in SECTIONS:
        section = getattr(cfg, name)
        if section is None:  # the other route's data section
            continue
        lines.append(f"# --- {name} ---")
        for key, value in section.model_dump(mode="json").items():
            if key in other:
                continue
            lines.append(f"{key}: {_flow(value)}")  # lists/dicts in flow style: the file loads back
    return "\n".join(lines)


def _flow(value) -> str:
    """A default as one line of YAML: scalars as in the resolved config, lists/dicts in flow style."""
    if isinstance(value, (dict, list, tuple)):
        return yaml.safe_dump(value, allow_unicode=True, default_flow_style=True).strip()
    return _scalar(value)


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    return str(value).lower() if isinstance(value, bool) else str(value)


def reference_markdown() -> str:
    out = [
        "# Config reference",
        "",
        "Generated from `src/lora_scripts/config/` by `lora-scripts config-docs`; do not edit by hand.",
        "",
        "Keys may be written flat (`lora_rank: 8`) or under their section (`network: {lora_rank: 8}`).",
        "",
    ]
    for name, cls in SECTIONS.items():
        out += [f"## {name}", "", "| key | default | meaning |", "|---|---|---|"]
        for key, field in cls.model_fields.items():
            default = (  # default_factory fields (lists) have no .default: call the factory
                "**required**"
                if field.is_required()
                else f"`{_flow(field.get_default(call_default_factory=True))}`"
            )
            out.append(f"| `{key}` | {default} | {(field.description or '').replace('|', '/')} |")
        out.append("")
    out += ["## Accepted kohya names", "", "| kohya key | our key |", "|---|---|"]
    out += [f"| `{k}` | `{v}` |" for k, v in ALIASES.items()]
    return "\n".join(out) + "\n"
