"""`llm` section: the chat data and the LoRA settings only the LLM route has (route: config/route.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from .base import Section


class LLMConfig(Section):
    dataset: Path = Field(
        ...,
        description="Chat data: a .jsonl, .json or .csv file, or a folder of them (OpenAI `messages`, "
        "ShareGPT `conversations`, Alpaca `instruction/input/output`, or CSV `question,answer[,system]`).",
    )
    dataset_format: Literal["auto", "messages", "sharegpt", "alpaca", "qa_csv"] = Field(
        "auto", description="Format of the dataset files; `auto` reads it from each file."
    )
    system_prompt: str | None = Field(
        None,
        description="System message put first in every conversation that has none (and used by `chat`).",
    )
    chat_template: str = Field(
        "auto",
        description="`auto`: the tokenizer's own chat template (what inference servers apply); `chatml`; "
        "or the path of a Jinja template file.",
    )
    max_seq_len: int = Field(
        1024, ge=16, le=131072, description="Longest sample in tokens; longer conversations are cut."
    )
    packing: bool = Field(
        False,
        description="Concatenate samples up to max_seq_len per row (fewer padding tokens, faster); samples "
        "never attend to each other and their position ids restart, so the loss is unchanged.",
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant",
        description="`assistant`: the loss is on the assistant's tokens only (system and user tokens are "
        "masked); `all`: on every token.",
    )
    eval_split: float = Field(
        0.0,
        ge=0.0,
        description="Hold out conversations for the eval loss: a fraction below 1 (0.1) or a count (8). "
        "0: off.",
    )
    eval_dataset: Path | None = Field(
        None,
        description="A separate chat file (or folder) for the eval loss, instead of or besides eval_split.",
    )

    def for_scoring(self) -> LLMConfig:
        """The settings eval losses are computed with: the same (no data randomness on this route)."""
        return self
