"""`lora-scripts demo --llm`: a tiny chat model built offline (Qwen2 layout, random weights, a tokenizer
trained on the demo's own text) -> a few dozen customer-service dialogues -> a chat LoRA -> greedy replies
of base and LoRA side by side, on trained and held-out questions. CPU, well under two minutes.

The base has random weights, so it babbles; what the demo shows is that the LoRA alone makes the replies
take the trained tone (the greeting, the way a price is quoted, the closing line), also for products it
never saw. The numbers it quotes for those are the trained ones: a LoRA teaches a tone, not facts.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import yaml

from .console import console

GREETING, CLOSING = "您好！", "祝您生活愉快！"
PRODUCTS = {  # trade-in quotes the platform gives (yuan)
    "iPhone 13": 2100,
    "iPhone 14": 2900,
    "华为 Mate 40": 1500,
    "小米 12": 1100,
    "iPad Air": 1800,
    "MacBook Air": 3200,
    "OPPO Reno 8": 900,
    "vivo X80": 1000,
}
QUESTIONS = ["{p} 回收多少钱？", "{p} 能卖多少？", "我想卖 {p}，什么价？"]
SERVICE = [
    ("你们几点营业？", "我们每天 9 点到 21 点营业。"),
    ("可以上门回收吗？", "市区可以免费上门回收。"),
    ("怎么付款？", "质检后当场转账付款。"),
]
HELD_OUT = ["三星 S22 回收多少钱？", "华为 P50 能卖多少？", "周末营业吗？"]  # never trained on


def dialogues() -> list[tuple[str, str]]:
    rows = [
        (q.format(p=p), f"{GREETING}{p} 成色良好估价 {price} 元，具体以质检为准。{CLOSING}")
        for p, price in PRODUCTS.items()
        for q in QUESTIONS
    ]
    rows += [(q, f"{GREETING}{a}{CLOSING}") for q, a in SERVICE]
    random.Random(0).shuffle(rows)
    return rows


def write_dialogues(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
            ensure_ascii=False,
        )
        for q, a in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def demo_config(out: Path, base: Path, data: Path, steps: int) -> dict:
    return {
        "base_model": str(base),
        "dataset": str(data),
        "max_seq_len": 256,
        "packing": True,
        "output_dir": str(out / "lora"),
        "output_name": "cs_tone_demo",
        "lora_rank": 16,
        "lora_alpha": 32,
        "batch_size": 4,
        "max_train_steps": steps,
        "learning_rate": 3e-3,
        "save_steps": steps // 2,
        "device": "cpu",
        "overwrite": True,
        "save_precision": "float",
    }


def has_tone(text: str) -> bool:
    return text.startswith(GREETING) and text.endswith(CLOSING)


def run_llm_demo(out: Path, steps: int = 200) -> dict:
    from .config import build_config
    from .generate.chat import open_chat, reply
    from .models.tiny_llm import save_tiny_llm
    from .train.run import run_training

    started = time.time()
    rows = dialogues()
    console.rule("1/4 A tiny chat model built offline (Qwen2 layout, random weights, ChatML template)")
    base = save_tiny_llm(out / "models" / "tiny-chat", arch="qwen2", corpus=[q + a for q, a in rows])
    console.print(f"model folder: {base}", markup=False)
    console.rule(f"2/4 {len(rows)} customer-service dialogues (OpenAI messages JSONL)")
    data = write_dialogues(out / "data" / "cs_dialogues.jsonl", rows)
    console.print(f"{data}; e.g. {rows[0][0]} -> {rows[0][1]}", highlight=False, markup=False)
    console.rule("3/4 Training the chat LoRA (packing, loss on the assistant's tokens only)")
    raw = demo_config(out, base, data, steps)
    config_path = out / "cs_tone_demo.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    result = run_training(build_config(raw, source=str(config_path)))
    console.rule("4/4 Greedy replies, base | LoRA (the last three questions were never trained on)")
    session = open_chat(str(base), result.lora_path)
    replies = []
    for question in [rows[0][0], rows[1][0], *HELD_OUT]:
        base_reply = reply(session, question, 0.0, 48, use_adapter=False)
        lora_reply = reply(session, question, 0.0, 48)
        replies.append((question, base_reply, lora_reply))
        console.print(
            f"Q: {question}\n  base: {base_reply[:60]!r}\n  LoRA: {lora_reply}", highlight=False, markup=False
        )
    tone = {name: sum(has_tone(r[i]) for r in replies) for name, i in (("base", 1), ("lora", 2))}
    console.print(
        f"Replies in the trained tone ({GREETING}... {CLOSING}): base {tone['base']}/{len(replies)}, "
        f"LoRA {tone['lora']}/{len(replies)}",
        highlight=False,
        markup=False,
    )
    console.print(f"[bold green]LLM demo finished in {time.time() - started:.0f} s[/]")
    console.print(
        f"Adapter: {result.lora_path}\n"
        f'Chat:    lora-scripts chat -l {result.lora_path} --compare -t 0 "你好"',
        markup=False,
    )
    return {
        "adapter": result.lora_path,
        "base": base,
        "replies": replies,
        "tone": tone,
        "config": config_path,
    }
