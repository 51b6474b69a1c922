"""Chat data as people write it -> conversations: OpenAI `messages` JSONL, ShareGPT, Alpaca, CSV
`question,answer[,system]`. Files may be UTF-8 (with or without BOM, CRLF) or GB18030 (data/textfile.py);
a bad row is refused with its file, line and what to do."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .textfile import EncodingNotes, read_text_file

SUFFIXES = (".jsonl", ".json", ".csv")
FORMATS = ("auto", "messages", "sharegpt", "alpaca", "qa_csv")
ROLES = {  # every spelling the formats use -> the chat-template role
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
}
EXAMPLE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


@dataclass(frozen=True)
class Conversation:
    messages: tuple[dict[str, str], ...]  # {"role": system|user|assistant, "content": text}
    where: str  # "line 3 of 'chats.jsonl'", for messages about this conversation

    def as_list(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]


def is_chat_data(path: Path) -> bool:
    """A chat data file, or a folder holding chat data files and no images (the doctor's dispatch)."""
    from .images import list_images

    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in SUFFIXES
    return (
        path.is_dir() and any(p.suffix.lower() in SUFFIXES for p in path.iterdir()) and not list_images(path)
    )


def chat_files(path: Path) -> list[Path]:
    """The data files at `path` (a file, or a folder of .jsonl/.json/.csv files, sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"Chat dataset '{path}' does not exist", "Check the path in dataset")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DataError(
            f"Folder '{path}' holds no .jsonl, .json or .csv file", "Point dataset at your chat data"
        )
    return files


@dataclass
class ChatScan:
    conversations: list[Conversation]
    problems: list[DataError]  # every row (or file) that cannot be trained on, in file order
    encodings: EncodingNotes


def scan_chats(path: Path, fmt: str = "auto", system_prompt: str | None = None) -> ChatScan:
    """Every conversation in `path` (with `system_prompt` first where one has no system turn), and every
    problem instead of only the first (for the doctor)."""
    if fmt not in FORMATS:
        raise ConfigError(f"Chat data format '{fmt}' is not known", f"Use one of {', '.join(FORMATS)}")
    scan = ChatScan([], [], EncodingNotes())
    for file in chat_files(path):
        try:
            decoded = read_text_file(file, "Chat data file", "Save it as UTF-8 and try again")
        except DataError as err:
            scan.problems.append(err)
            continue
        scan.encodings.add("chat data file", file, decoded)
        try:
            for where, record in _records(file, decoded.text):
                if isinstance(record, DataError):
                    scan.problems.append(record)
                    continue
                try:
                    scan.conversations.append(to_conversation(record, fmt, where, system_prompt))
                except DataError as err:
                    scan.problems.append(err)
        except DataError as err:  # the file itself: invalid .json, a CSV without the columns
            scan.problems.append(err)
    return scan


def read_chats(path: Path, fmt: str = "auto", system_prompt: str | None = None) -> list[Conversation]:
    """The conversations of `path` for training: the first bad row stops with its sentence."""
    scan = scan_chats(path, fmt, system_prompt)
    if scan.problems:
        raise scan.problems[0]
    scan.encodings.log()
    if not scan.conversations:
        raise DataError(f"Chat dataset '{path}' holds no conversation", f"Add lines such as {EXAMPLE}")
    return scan.conversations


def _records(file: Path, text: str):
    """(where, record) for each row of a .jsonl, .json (a list) or .csv file; a row that cannot be parsed
    comes as (where, DataError) so the rows after it are still read."""
    name = file.name
    suffix = file.suffix.lower()
    if suffix == ".csv":
        yield from _csv_records(name, text)
        return
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"'{name}' is not valid JSON (line {exc.lineno}: {exc.msg})",
                "Fix that line, or write one conversation per line in a .jsonl file",
            ) from exc
        rows = data if isinstance(data, list) else [data]
        for i, record in enumerate(rows, 1):
            yield f"item {i} of '{name}'", record
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:  # the row's problem; the next lines are still read
            record = DataError(
                f"Line {number} of '{name}' is not valid JSON ({exc.msg} at column {exc.colno})",
                f"Each line must be one JSON object such as {EXAMPLE}",
            )
        yield f"line {number} of '{name}'", record


def _csv_records(name: str, text: str):
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if not {"question", "answer"} <= set(header):
        raise DataError(
            f"'{name}' has no question and answer columns (its header is {','.join(header) or 'empty'})",
            "Make the first line `question,answer` (optionally `,system`)",
        )
    reader.fieldnames = header
    for row in reader:
        where = f"line {reader.line_num} of '{name}'"
        if None in row:
            yield (
                where,
                DataError(
                    f"Line {reader.line_num} of '{name}' has more cells than the header",
                    "Put text that contains commas in double quotes",
                ),
            )
            continue
        yield where, {k: (v or "") for k, v in row.items()}


def detect_format(record: dict) -> str | None:
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "question" in record and "answer" in record:
        return "qa_csv"
    return None


def to_conversation(record, fmt: str, where: str, system_prompt: str | None = None) -> Conversation:
    if not isinstance(record, dict):
        raise DataError(f"The {where} is not a JSON object", f"Write each conversation like {EXAMPLE}")
    found = detect_format(record)
    if found is None or (fmt != "auto" and found != fmt):
        what = "a known chat format" if fmt == "auto" else f"in the {fmt} format (dataset_format)"
        raise DataError(
            f"The {where} is not {what} (its keys: {', '.join(map(str, record)) or 'none'})",
            "Use `messages` (OpenAI), `conversations` (ShareGPT), `instruction`/`output` (Alpaca) or "
            "CSV `question,answer`, or fix dataset_format",
        )
    messages = {"messages": _messages, "sharegpt": _sharegpt, "alpaca": _alpaca, "qa_csv": _qa}[found](
        record, where
    )
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    _check_turns(messages, where)
    return Conversation(tuple(messages), where)


def _turns(turns, where: str, role_key: str, content_key: str) -> list[dict[str, str]]:
    if not isinstance(turns, list) or not turns:
        raise DataError(f"The turns of the {where} are not a non-empty list", f"Write them like {EXAMPLE}")
    out = []
    for i, turn in enumerate(turns, 1):
        role = ROLES.get(str(turn.get(role_key, "")).lower()) if isinstance(turn, dict) else None
        if role is None:
            raise DataError(
                f"Turn {i} of the {where} has no known {role_key} (system, user or assistant)",
                f"Give every turn a {role_key} and a {content_key}",
            )
        content = turn.get(content_key)
        if not isinstance(content, str):
            raise DataError(f"Turn {i} of the {where} has no text in '{content_key}'", "Add the text")
        out.append({"role": role, "content": content})
    return out


def _messages(record, where):
    return _turns(record["messages"], where, "role", "content")


def _sharegpt(record, where):
    return _turns(record["conversations"], where, "from", "value")


def _alpaca(record, where):
    prompt = "\n\n".join(str(record.get(k) or "") for k in ("instruction", "input") if record.get(k))
    messages = [{"role": "system", "content": str(record["system"])}] if record.get("system") else []
    return messages + [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": str(record.get("output") or "")},
    ]


def _qa(record, where):
    messages = [{"role": "system", "content": record["system"]}] if record.get("system", "").strip() else []
    return messages + [
        {"role": "user", "content": record["question"]},
        {"role": "assistant", "content": record["answer"]},
    ]


def _check_turns(messages: list[dict[str, str]], where: str) -> None:
    """What no chat template can train on: empty turns, a system turn after the start, no reply."""
    for i, m in enumerate(messages, 1):
        if not m["content"].strip():
            raise DataError(f"Turn {i} ({m['role']}) of the {where} is empty", "Write its text or delete it")
        if m["role"] == "system" and i > 1:
            raise DataError(
                f"Turn {i} of the {where} is a system turn after the start",
                "Put the system message first",
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"The {where} has no assistant turn, so nothing to learn", "Add the reply")
