"""Config for people: the resolved YAML (`--dry-run`) and the Markdown reference in docs/config.md."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .kohya import KOHYA, OURS_THE_KOHYA_WAY
from .kohya_dataset import TOML_DOC
from .kohya_gui import FAMILY_SWITCHES, GUI_KEYS, OTHER_FAMILY_KEYS
from .kohya_network import NET_ARGS, READ_WITH_MODULE
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
        "A config file is YAML (`.yaml`), kohya sd-scripts' TOML (`.toml`, its `--config_file`; its "
        "`[tables]` only group keys) or the kohya_ss GUI's saved JSON (`.json`, where an empty string means "
        "not set). kohya's key names are read as the tables at the end say.",
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
    return "\n".join(out + _kohya_markdown()) + "\n"


_KOHYA_INTRO = [
    "## Accepted kohya names",
    "",
    "Keys of kohya sd-scripts' train_network.py and of the kohya_ss GUI. Each is *translated* (it means "
    "the same as the key of ours shown), a *no-op* (this trainer already does what it asks; a set one is "
    "logged with the reason), or *refused* with a sentence naming our equivalent (it cannot be honoured "
    "here; its off value, kohya's default, asks for nothing and is accepted). What each translated, and why "
    "each no-op does nothing, is logged when the config is read.",
    "",
]


def _kohya_markdown() -> list[str]:
    rules = {**{k: None for k in ALIASES}, **KOHYA, **GUI_KEYS}
    rules = {k: r for k, r in rules.items() if k not in OTHER_FAMILY_KEYS}  # named in one paragraph below
    out = [*_KOHYA_INTRO, "| kohya key | here | how |", "|---|---|---|"]
    for key in sorted(rules, key=str.lower):
        rule = rules[key]
        kind, doc = ("translated", f"`{ALIASES[key]}`") if rule is None else (rule.kind, rule.doc)
        out.append(f"| `{key}` | {kind} | {_cell(doc)} |")
    switches = ", ".join(f"`{s}`" for s in FAMILY_SWITCHES)
    out += [
        "",
        f"The GUI's switches for other model families ({switches}) are refused when on. Its fields "
        "for those families, kept in every saved JSON, are ignored in a GUI JSON and refused elsewhere "
        "(where they mean that family's training): those prefixed `flux1_`, `sd3_`, `hunyuan_`, `anima_` or "
        "`lumina_`, and " + ", ".join(f"`{k}`" for k in sorted(OTHER_FAMILY_KEYS)) + ".",
        "",
        "### Keys of ours that kohya writes differently",
        "",
        "| key | read as |",
        "|---|---|",
        *(f"| `{k}` | {_cell(r.doc)} |" for k, r in sorted(OURS_THE_KOHYA_WAY.items())),
        "",
        "### dataset_config (kohya's dataset TOML)",
        "",
        "Its [general], one [[datasets]] and that dataset's [[datasets.subsets]]: a subset's value wins over "
        "its dataset's, which wins over [general], as in kohya. Keys the TOML sets win over the training "
        "config's (kohya's order too; a logged note names each one), and a command-line override wins over "
        "both.",
        "",
        "| TOML key | here |",
        "|---|---|",
        *(f"| {k} | {_cell(doc)} |" for k, doc in TOML_DOC.items()),
        "",
        "### network_args entries",
        "",
        'kohya\'s `network_args` is a list of `"key=value"` texts (or one text of them, or a mapping); with '
        "`network_module` it becomes:",
        "",
        "| entry | here | how |",
        "|---|---|---|",
        *(f"| `{k}` | translated | {_cell(doc)} |" for k, doc in READ_WITH_MODULE.items()),
        *(f"| `{k}` | {r.kind} | {_cell(r.doc)} |" for k, r in sorted(NET_ARGS.items())),
        "",
        "Any other entry is refused in one sentence that names it.",
    ]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "/")
