"""The doctor for chat data: every row that cannot be trained on (not only the first), exact duplicates,
turns out of order, conversations longer than max_seq_len (tokens cut), and a length histogram.

`chat_findings` is also what training logs before it starts (train/chat_inputs.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data.chat import Conversation, scan_chats
from ..errors import DataError
from .report import GROUPS, PREFIX, Finding, HasFindings, plural

SHOWN = 3  # places named per finding


@dataclass
class ChatDoctorReport(HasFindings):
    path: Path
    conversations: int = 0
    findings: list[Finding] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    unit: str = "characters"  # "tokens" when a model's tokenizer was given

    def summary(self) -> str:
        lines = [f"Chat data doctor: '{self.path}': {plural(self.conversations, 'conversation')} readable"]
        for level, title in GROUPS.items():
            found = [f for f in self.findings if f.level == level]
            if found:
                lines.append(f"{title} ({len(found)}):")
                lines += [f"  {PREFIX[level]}: {f.message}" for f in found]
        if not self.findings:
            lines.append("No problems found.")
        if self.lengths:
            lines.append(f"Length of the conversations in {self.unit} (as trained, template included):")
            lines += histogram(self.lengths)
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        if self.errors:
            more = f" (and {plural(len(self.errors) - 1, 'more error')})" if len(self.errors) > 1 else ""
            raise DataError(f"The chat data doctor found a problem: {self.errors[0]}{more}", "Fix it")


def _they(n: int, one: str, many: str) -> str:
    """ "1 conversation repeats" / "2 conversations repeat"."""
    return f"{plural(n, 'conversation')} {one if n == 1 else many}"


def _places(wheres: list[str]) -> str:
    shown = ", ".join(wheres[:SHOWN])
    return shown + (f" and {len(wheres) - SHOWN} more" if len(wheres) > SHOWN else "")


def chat_findings(conversations: list[Conversation], cuts: dict[str, int], max_seq_len: int) -> list[Finding]:
    """Warnings about conversations that train, but not as meant. `cuts`: where -> tokens cut."""
    found = []
    same: dict[tuple, list[str]] = defaultdict(list)
    for c in conversations:
        same[tuple((m["role"], m["content"]) for m in c.messages)].append(c.where)
    copies = [w for group in same.values() if len(group) > 1 for w in group[1:]]
    if copies:
        found.append(
            Finding(
                "warning",
                "duplicate",
                f"{_they(len(copies), 'repeats', 'repeat')} an earlier one exactly ({_places(copies)}): "
                "they weigh double; delete the copies unless that is meant",
            )
        )
    order = [c.where for c in conversations if _out_of_order(c)]
    if order:
        found.append(
            Finding(
                "warning",
                "role order",
                f"{_they(len(order), 'has', 'have')} two user or two assistant turns in a row "
                f"({_places(order)}); some chat templates refuse that, merge the turns",
            )
        )
    open_end = [c.where for c in conversations if c.messages[-1]["role"] == "user"]
    if open_end:
        found.append(
            Finding(
                "warning",
                "no reply",
                f"{_they(len(open_end), 'ends', 'end')} with a user turn ({_places(open_end)}): the "
                "last question gets no reply to learn; add it or delete the turn",
            )
        )
    if cuts:
        found.append(
            Finding(
                "warning",
                "too long",
                f"{_they(len(cuts), 'is', 'are')} longer than max_seq_len {max_seq_len}: "
                f"{sum(cuts.values())} tokens are cut off ({_places(list(cuts))}); raise max_seq_len or "
                "split them",
            )
        )
    return found


def _out_of_order(c: Conversation) -> bool:
    roles = [m["role"] for m in c.messages if m["role"] != "system"]
    return any(a == b for a, b in zip(roles, roles[1:], strict=False))


def histogram(lengths: list[int], width: int = 30) -> list[str]:
    """Counts per power-of-two range, as text bars."""
    edges = [2**k for k in range(4, 20)]
    counts: dict[int, int] = defaultdict(int)
    for n in lengths:
        counts[next(e for e in edges if n <= e)] += 1
    top = max(counts.values())
    lines = []
    for edge in edges:
        if edge < min(counts) or edge > max(counts):
            continue
        n = counts.get(edge, 0)
        lines.append(f"  <= {edge:>6}: {'#' * round(width * n / top):<{width}} {n}")
    return lines + [
        f"  shortest {min(lengths)}, median {sorted(lengths)[len(lengths) // 2]}, longest {max(lengths)}"
    ]


def run_chat_doctor(
    path: Path,
    fmt: str = "auto",
    system_prompt: str | None = None,
    base_model: str | None = None,
    max_seq_len: int = 1024,
    chat_template: str = "auto",
) -> ChatDoctorReport:
    """Check chat data as training reads it; with `base_model`, lengths in that model's tokens."""
    scan = scan_chats(Path(path), fmt, system_prompt)
    report = ChatDoctorReport(Path(path), len(scan.conversations))
    report.findings += [Finding("error", "unreadable row", err.message) for err in scan.problems]
    cuts: dict[str, int] = {}
    if base_model and scan.conversations:
        from ..data.chat_tokens import check_tokenizer, resolve_template, tokenize_chat
        from ..models.llm import load_tokenizer

        tokenizer = load_tokenizer(base_model)
        check_tokenizer(tokenizer, base_model)
        template = resolve_template(chat_template, tokenizer, base_model)
        samples = [tokenize_chat(c, tokenizer, template, "all", 10**9) for c in scan.conversations]
        report.lengths, report.unit = [len(s) for s in samples], "tokens"
        cuts = {s.where: len(s) - max_seq_len for s in samples if len(s) > max_seq_len}
    else:
        report.lengths = [sum(len(m["content"]) for m in c.messages) for c in scan.conversations]
    report.findings += chat_findings(scan.conversations, cuts, max_seq_len)
    report.findings += [Finding("note", "encoding", line) for line in scan.encodings.lines()]
    if not base_model:
        report.findings.append(
            Finding("note", "lengths", "Lengths are in characters; give --model to count the model's tokens")
        )
    return report
