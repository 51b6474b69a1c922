"""`lora-scripts chat`: one question (the reply, or base vs LoRA with --compare), or an interactive chat."""

from __future__ import annotations

from pathlib import Path

import typer

from ..console import console, guarded, setup_logging

EXAMPLES = """
Examples:\n
  lora-scripts chat -l output/cs_tone/cs_tone "iPhone 13 回收多少钱？" --temperature 0\n
  lora-scripts chat -m Qwen/Qwen2.5-0.5B-Instruct -l output/cs_tone/cs_tone --compare "你好"\n
  lora-scripts chat -l output/cs_tone/cs_tone   (interactive: /reset, /system TEXT, /exit)
"""


def register(app: typer.Typer) -> None:
    app.command(epilog=EXAMPLES)(chat)


def chat(
    question: str = typer.Argument(None, help="The question; without it the chat is interactive."),
    model: str = typer.Option(
        None, "--model", "-m", help="Base model folder or hub id (default: the one the adapter names)."
    ),
    lora: Path = typer.Option(None, "--lora", "-l", help="PEFT adapter folder (what LLM training writes)."),
    system: str = typer.Option(None, "--system", "-s", help="System message."),
    temperature: float = typer.Option(0.7, "--temperature", "-t", min=0.0, help="0: greedy, deterministic."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Longest reply in tokens."),
    compare: bool = typer.Option(False, "--compare", help="Show the base model's reply and the LoRA's."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and library logs."),
) -> None:
    """Chat with an LLM and its LoRA adapter."""
    setup_logging(debug)

    def action():
        from ..errors import ConfigError
        from .chat import base_of, open_chat, reply

        if model is None and lora is None:
            raise ConfigError("chat needs a model", "Give the adapter with -l/--lora or the model with -m")
        if compare and lora is None:
            raise ConfigError("--compare needs an adapter to compare with", "Give it with -l/--lora")
        session = open_chat(model or base_of(lora), lora, system)
        if question is not None:
            _answer(session, question, temperature, max_new_tokens, compare, reply)
            return
        _interactive(session, temperature, max_new_tokens, reply)

    guarded(action, debug)


def _answer(session, question, temperature, max_new_tokens, compare, reply) -> None:
    if compare:
        base = reply(session, question, temperature, max_new_tokens, use_adapter=False)
        lora = reply(session, question, temperature, max_new_tokens)
        typer.echo(f"[base] {base}\n[lora] {lora}")
        return
    typer.echo(reply(session, question, temperature, max_new_tokens))


def _interactive(session, temperature, max_new_tokens, reply) -> None:
    from transformers import TextStreamer

    console.print("Chat: /reset clears the history, /system TEXT sets the system message, /exit ends.")
    streamer = TextStreamer(session.tokenizer, skip_prompt=True, skip_special_tokens=True)
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            return
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            session.history.clear()
            continue
        if line.startswith("/system"):
            session.system = line.removeprefix("/system").strip() or None
            session.history.clear()
            continue
        if not line:
            continue
        answer = reply(session, line, temperature, max_new_tokens, streamer=streamer)
        session.history += [{"role": "user", "content": line}, {"role": "assistant", "content": answer}]
