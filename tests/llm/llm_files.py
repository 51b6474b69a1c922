"""Files the LLM tests write as users write them: chat data in each format and YAML configs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DIALOGUES = [
    ("iPhone 13 回收多少钱？", "您好！iPhone 13 128GB 成色良好，回收估价 2100 元。"),
    ("你们营业到几点？", "您好！我们每天 9:00 到 21:00 营业，欢迎光临。"),
    ("How do I trade in my laptop?", "Hello! Bring the laptop and its charger; we quote on the spot."),
    ("平板可以以旧换新吗？", "您好！平板可以以旧换新，价格按成色评估。"),
    ("Is shipping free?", "Hello! Shipping is free for trade-ins above 500 yuan."),
    ("屏幕碎了还收吗？", "您好！屏幕碎了也可以回收，报价会低一些。"),
]
SYSTEM = "你是手机回收店的客服。"


def write_messages_jsonl(path: Path, dialogues=DIALOGUES, system: str | None = SYSTEM) -> Path:
    lines = []
    for question, answer in dialogues:
        turns = [{"role": "system", "content": system}] if system else []
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        lines.append(json.dumps({"messages": turns}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path
