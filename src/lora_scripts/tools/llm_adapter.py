"""Tools on PEFT adapter folders (the LLM route's output): inspect, merge into the base model, and export
for servers that read no `use_rslora` (llama.cpp scales every adapter by lora_alpha / r)."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from safetensors import safe_open

from ..files import replacing_folder
from ..save.peft_adapter import CONFIG_FILE, MAGNITUDE, PREFIX, WEIGHTS_FILE, read_peft_adapter
from .inspect_lora import human_size
from .lora_io import check_output


def is_adapter_folder(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def describe_adapter(folder: Path) -> dict:
    conf, tensors = read_peft_adapter(folder)
    modules = sorted({k.removeprefix(PREFIX).rsplit(".", 2)[0] for k in tensors if ".lora_A." in k})
    other = [k for k in tensors if not any(part in k for part in (".lora_A.", ".lora_B.", f".{MAGNITUDE}"))]
    size = (folder / WEIGHTS_FILE).stat().st_size
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
        meta = f.metadata() or {}
    return {
        "folder": str(folder),
        "kind": f"PEFT {conf.get('peft_type', '?')} adapter ({conf.get('task_type') or 'no task type'})",
        "base_model": conf.get("base_model_name_or_path"),
        "r": conf.get("r"),
        "lora_alpha": conf.get("lora_alpha"),
        "use_rslora": bool(conf.get("use_rslora")),
        "use_dora": bool(conf.get("use_dora")),
        "target_modules": sorted(conf.get("target_modules") or []),
        "modules": len(modules),
        "per_target": dict(Counter(m.rsplit(".", 1)[-1] for m in modules)),
        "other_tensors": other,
        "parameters": sum(t.numel() for t in tensors.values()),
        "dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()}),
        "size": human_size(size),
        "modules_to_save": conf.get("modules_to_save"),
        "continued_from": meta.get("ss_lineage") or meta.get("ss_parent_lora"),
        "comment": meta.get("ss_training_comment"),
    }


def render_adapter(report: dict) -> Group:
    table = Table(
        show_header=False, box=None, title=f"Adapter {escape(str(report['folder']))}", title_justify="left"
    )
    table.add_row("kind", report["kind"])
    table.add_row("base model", escape(report["base_model"] or "-"))
    scaling = "alpha/sqrt(r), rsLoRA" if report["use_rslora"] else "alpha/r"
    table.add_row("rank / alpha", f"{report['r']} / {report['lora_alpha']} (scaling {scaling})")
    table.add_row("size", f"{report['size']}, {', '.join(report['dtypes'])}, {report['parameters']:,} params")
    per = ", ".join(f"{k} {n}" for k, n in sorted(report["per_target"].items()))
    table.add_row("modules", f"{report['modules']} ({per})")
    if report["continued_from"]:
        table.add_row("continued from", escape(str(report["continued_from"])))
    if report["comment"]:
        table.add_row("comment", escape(str(report["comment"])))
    notes = []
    if report["use_dora"]:
        notes.append("DoRA: vLLM and llama.cpp cannot load it; `lora merge` bakes it into a model they load")
    if report["modules_to_save"]:
        notes.append("modules_to_save: vLLM cannot load it")
    if report["use_rslora"]:
        notes.append("rsLoRA: llama.cpp ignores it; use `lora export` first")
    if report["other_tensors"]:
        notes.append(f"{len(report['other_tensors'])} tensors that are not LoRA weights")
    table.add_row("notes", "; ".join(notes) or "-")
    return Group(table)


def run_merge_adapter(adapter: Path, base: str | None, out: Path, overwrite: bool) -> Path:
    """The base model with the adapter merged in (peft's merge_and_unload), saved as a transformers folder
    with the tokenizer; written beside `out` and renamed into place."""
    from peft import PeftModel

    from ..models.llm import load_causal_lm, load_tokenizer

    conf, _ = read_peft_adapter(adapter)
    base = base or conf.get("base_model_name_or_path")
    check_output(out, overwrite, folder_output=True)
    tokenizer = load_tokenizer(base)
    merged = PeftModel.from_pretrained(load_causal_lm(base), str(adapter)).merge_and_unload()
    with replacing_folder(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def run_export_adapter(adapter: Path, out: Path, overwrite: bool) -> Path:
    """A copy whose lora_alpha holds the rsLoRA factor (alpha * sqrt(r), use_rslora false): the same
    scaling for peft and vLLM, and the right one for llama.cpp, which reads only lora_alpha / r."""
    conf, _ = read_peft_adapter(adapter)
    check_output(out, overwrite, folder_output=True)
    if conf.get("use_rslora"):
        alpha, rank = conf["lora_alpha"], conf["r"]
        ranks, alphas = conf.get("rank_pattern") or {}, conf.get("alpha_pattern") or {}
        conf["alpha_pattern"] = {
            key: alphas.get(key, alpha) * math.sqrt(ranks.get(key, rank)) for key in set(ranks) | set(alphas)
        }
        conf["lora_alpha"] = alpha * math.sqrt(rank)
        conf["use_rslora"] = False
    with replacing_folder(out) as tmp:
        shutil.copy2(adapter / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(conf, indent=2, ensure_ascii=False), encoding="utf-8")
    return out
