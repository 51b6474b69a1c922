"""Chat with a base model and a PEFT adapter: one reply, base vs LoRA, or an interactive session.

The reply is made the way a server makes it: the tokenizer's chat template with the generation prompt,
then `generate` (greedy and deterministic with temperature 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError
from ..models.llm import load_causal_lm, load_tokenizer
from ..save.peft_adapter import read_peft_adapter


@dataclass
class ChatSession:
    model: torch.nn.Module  # a PeftModel when an adapter is loaded
    tokenizer: object
    has_adapter: bool
    system: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    def messages(self, question: str) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history + [{"role": "user", "content": question}]


def base_of(adapter: Path) -> str:
    """The base model an adapter folder names (adapter_config.json's base_model_name_or_path)."""
    conf, _ = read_peft_adapter(adapter)
    base = conf.get("base_model_name_or_path")
    if not base:
        raise ConfigError(
            f"Adapter '{adapter}' does not name its base model", "Give the base model with -m/--model"
        )
    return base


def open_chat(base: str, adapter: Path | None, system: str | None = None) -> ChatSession:
    tokenizer = load_tokenizer(base)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"The tokenizer of '{base}' has no chat template, so a chat cannot be formatted",
            "Use a chat (instruct) model",
        )
    model = load_causal_lm(base)
    if adapter is not None:
        from peft import PeftModel

        read_peft_adapter(adapter)  # a sentence when it is not an adapter folder
        model = PeftModel.from_pretrained(model, str(adapter))
    return ChatSession(model.eval(), tokenizer, adapter is not None, system)


@torch.no_grad()
def reply(
    session: ChatSession,
    question: str,
    temperature: float = 0.0,
    max_new_tokens: int = 128,
    use_adapter: bool = True,
    streamer=None,
) -> str:
    """The model's answer to `question` after the session's history; greedy when temperature is 0."""
    tok = session.tokenizer
    ids = tok.apply_chat_template(
        session.messages(question), add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    args = dict(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        streamer=streamer,
        **sampling,
    )
    if session.has_adapter and not use_adapter:
        with session.model.disable_adapter():
            out = session.model.generate(**args)
    else:
        out = session.model.generate(**args)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()
