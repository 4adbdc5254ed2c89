"""Conversations from JSONL: one conversation per line, each bad line an error on that line only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from purple.types import ROLES, Message

MAX_LINE_BYTES = 1_000_000


@dataclass(frozen=True)
class ConversationRecord:
    """A line of the input: its number, its `id` if it had one, and the conversation or the reason there is none."""

    line: int
    id: Any = None
    messages: tuple[Message, ...] = ()
    error: str | None = None


def parse_conversation(data: Any) -> tuple[Message, ...]:
    """Accept {"messages": [...]}, {"conversation": [...]}, {"prompt": ..., "response": ...} or {"text": ...}.

    A message is {"role": ..., "content": ..., "images": [paths or URLs]} (images optional).
    """
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    turns = data.get("messages", data.get("conversation"))
    if turns is not None:
        if not isinstance(turns, list) or not turns:
            raise ValueError("'messages' must be a non-empty list")
        return tuple(_message(m, n) for n, m in enumerate(turns, 1))
    prompt = data.get("prompt", data.get("text"))
    if not isinstance(prompt, str):
        raise ValueError("expected 'messages', 'conversation', 'prompt' or 'text'")
    messages = [Message("user", prompt)]
    response = data.get("response")
    if response is not None:
        if not isinstance(response, str):
            raise ValueError("'response' must be text")
        messages.append(Message("assistant", response))
    return tuple(messages)


def _message(item: Any, n: int) -> Message:
    if not isinstance(item, dict):
        raise ValueError(f"message {n} is not an object")
    role, content = item.get("role"), item.get("content", "")
    if role not in ROLES:
        raise ValueError(f"message {n} has role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise ValueError(f"message {n} content must be text")
    images = item.get("images") or ()
    if not isinstance(images, list | tuple) or not all(isinstance(i, str) for i in images):
        raise ValueError(f"message {n} images must be a list of paths or URLs")
    return Message(role, content, images=tuple(images))


def read_jsonl(stream: IO[bytes]) -> Iterator[ConversationRecord]:
    """Records from a byte stream, one per non-blank line; a bad line yields a record with `error` set."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            while raw and not raw.endswith(b"\n"):  # skip the rest of the over-long line
                raw = stream.readline(MAX_LINE_BYTES + 1)
            yield ConversationRecord(number, error=f"line longer than {MAX_LINE_BYTES:,} bytes")
            continue
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield ConversationRecord(number, error=f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            yield ConversationRecord(number, error="JSON nested too deeply to read")
            continue
        record_id = data.get("id") if isinstance(data, dict) else None
        try:
            yield ConversationRecord(number, record_id, parse_conversation(data))
        except ValueError as exc:
            yield ConversationRecord(number, record_id, error=str(exc))
