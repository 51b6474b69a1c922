"""`lora inspect`'s facts on the LoRA library page in the page's language: the fact names (field_text's
FACT_ZH), the module groups and the few values that are English words; a file that cannot be read says so
in Chinese, its English sentence after it. Numbers, dates, file and model names stay as they are."""

from __future__ import annotations

from .field_text import FACT_ZH

GROUP_ZH = {
    "TE": "文本编码器",
    "TE1": "文本编码器 1",
    "TE2": "文本编码器 2",
    "UNet down": "UNet 下采样层",
    "UNet mid": "UNet 中间层",
    "UNet up": "UNet 上采样层",
    "other": "其他",
}
# (fact, value) -> Chinese value
VALUE_ZH = {
    ("mixed precision", "no"): "否（全精度 fp32）",
    ("scheduler", "constant"): "constant（一直不变）",
    ("scheduler", "cosine"): "cosine（逐渐变慢）",
    ("scheduler", "cosine_with_restarts"): "cosine_with_restarts（逐渐变慢并定期重来）",
    ("scheduler", "linear"): "linear（匀速变慢）",
    ("network", "networks.lora"): "LoRA（networks.lora）",
    ("network", "lycoris.kohya"): "LyCORIS（lycoris.kohya）",
}
UNREADABLE_ZH = "这个文件读不出来，可能已损坏，或不是 LoRA 文件。英文原因：{detail}"


def facts_shown(facts: dict[str, str], zh: bool) -> list[list[str]]:
    """[name, value] of inspect's training facts, in the page's language."""
    if not zh:
        return [[name, value] for name, value in facts.items()]
    return [[FACT_ZH.get(name, name), VALUE_ZH.get((name, value), value)] for name, value in facts.items()]


def localise(item: dict, zh: bool) -> dict:
    """One library entry (api_library._library) with what the page shows in its language."""
    facts = item["facts"]
    item["facts_shown"] = facts_shown(facts.get("facts", {}), zh)
    if zh and "error" in facts:
        facts["error"] = UNREADABLE_ZH.format(detail=facts["error"])
    if zh:
        for group in facts.get("groups", []):
            group["group"] = GROUP_ZH.get(group["group"], group["group"])
    return item
