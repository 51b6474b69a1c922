"""The two sides of the LLM benchmark, run in a worker process (bench/worker.py, spec "route": "llm").

Both train the same chat LoRA on the same model folder and the same rows in the same order: rank, alpha, LoRA
on every attention/MLP linear, AdamW (weight decay 1e-2), clipping at 1.0, fp32, with or without packing.

- trainer: `run_training(cfg)`, as `lora-scripts train` runs it.
- bare: the loop a user writes with transformers + peft (get_peft_model, AdamW, a padding collate).
  The rows are made before the loop with the project's tokeniser (data prep, outside the timed steps), so
  both sides do the same work per step.

Tokens per second count the real (non-padding) tokens each forward pass sees, with a forward pre-hook on the
input embedding, stamped at every optimiser step like bench/clock.py's times.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from .common import CACHE

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WORDS = "您好 欢迎 光临 回收 报价 成色 手机 电脑 平板 以旧换新 质检 付款 上门 客服 感谢 耐心".split()


def llm_files(tiny: bool) -> tuple[Path, Path]:
    """(model folder, chat data): a small Llama (random weights) and conversations of mixed lengths."""
    from lora_scripts.models.tiny_llm import save_tiny_llm

    size = (
        {"hidden": 64, "layers": 2, "vocab_size": 600}
        if tiny
        else {"hidden": 256, "layers": 4, "vocab_size": 2000}
    )
    folder = CACHE / f"llm-h{size['hidden']}-l{size['layers']}"
    rng = random.Random(0)
    chats = []
    for i in range(64):  # replies from a few words to a few hundred: packing's case
        words = rng.choice([4, 8, 16, 32, 64, 128])
        reply = "".join(rng.choice(WORDS) for _ in range(words))
        chats.append(
            {"messages": [{"role": "user", "content": f"问题 {i}"}, {"role": "assistant", "content": reply}]}
        )
    data = CACHE / "llm-chats.jsonl"
    CACHE.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in chats) + "\n", encoding="utf-8")
    save_tiny_llm(folder, corpus=["".join(WORDS)] * 10, **size)
    return folder, data


class TokenCounter:
    """Real tokens seen by the model's input embedding, cumulated and stamped at each optimiser step."""

    def __init__(self, pad_id: int):
        self.pad_id, self.total, self.at_step = pad_id, 0, []
        self._forward = torch.nn.modules.module.register_module_forward_pre_hook(self._on_forward)
        self._step = register_optimizer_step_post_hook(lambda *a: self.at_step.append(self.total))

    def _on_forward(self, module, args):
        if (
            isinstance(module, torch.nn.Embedding)
            and args
            and args[0].dtype == torch.long
            and torch.is_grad_enabled()
        ):
            self.total += int((args[0] != self.pad_id).sum())

    def close(self) -> list[int]:
        self._forward.remove()
        self._step.remove()
        return self.at_step


def config(spec: dict, total: int) -> dict:
    return {
        "base_model": spec["model"],
        "dataset": spec["data"],
        "output_dir": spec["out"],
        "output_name": "bench",
        "max_seq_len": spec["max_seq_len"],
        "packing": spec["packing"],
        "lora_rank": spec["rank"],
        "lora_alpha": spec["rank"],
        "batch_size": spec["batch_size"],
        "learning_rate": spec["lr"],
        "max_train_steps": total,
        "seed": spec["seed"],
        "device": spec["device"],
        "overwrite": True,
    }


def train_llm_trainer(spec: dict, total: int) -> dict:
    from lora_scripts.config import build_config
    from lora_scripts.train.run import run_training

    counter = TokenCounter(spec["pad_id"])
    result = run_training(build_config(config(spec, total), source="bench"))
    return {"losses": result.losses, "tokens_at_step": counter.close()}


def train_llm_bare(spec: dict, total: int) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lora_scripts.config import build_config
    from lora_scripts.train.chat_inputs import check_chat_inputs

    cfg = build_config(config(spec, total), source="bench")
    index, _ = check_chat_inputs(cfg, lambda out: None)  # data prep only: the same rows as the trainer
    torch.manual_seed(spec["seed"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=spec["rank"], lora_alpha=spec["rank"], target_modules=LINEAR))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["lr"], weight_decay=1e-2)
    counter = TokenCounter(spec["pad_id"])
    model.train()
    step, epoch, losses = 0, 0, []
    while step < total:
        rows = list(index.items)
        random.Random(spec["seed"] * 1000003 + epoch).shuffle(rows)
        for start in range(0, len(rows), spec["batch_size"]):
            if step >= total:
                break
            loss = model(
                **_collate(rows[start : start + spec["batch_size"]], spec["pad_id"]), use_cache=False
            ).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
        epoch += 1
    return {"losses": losses, "tokens_at_step": counter.close()}


def _collate(rows, pad_id: int) -> dict[str, torch.Tensor]:
    """Right padding; position ids restart per packed sample (what transformers reads as packed rows)."""
    width = max(sum(len(s.input_ids) for s in row.samples) for row in rows)
    ids, labels, pos = [], [], []
    for row in rows:
        r_ids = [t for s in row.samples for t in s.input_ids]
        r_labels = [t for s in row.samples for t in s.labels]
        r_pos = [i for s in row.samples for i in range(len(s.input_ids))]
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_labels + [-100] * pad)
        pos.append(r_pos + list(range(pad)))
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "position_ids": torch.tensor(pos)}
