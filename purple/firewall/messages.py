"""Messages in OpenAI's chat shape <-> Purple Messages, tool calls as scannable text, and refusal answers.

Only content the firewall can read is accepted: text parts (and refusal parts), image URLs (kept on the message).
Audio, files and unknown part types are refused rather than passed on unscanned.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from purple.types import Message

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
    "memory": "memory",
}
MAX_MESSAGES = 2_000


def from_openai(items: Any) -> list[Message]:
    """Messages from a request's `messages` list; ValueError naming the first bad message."""
    if not isinstance(items, list) or not items:
        raise ValueError("`messages` must be a non-empty list")
    if len(items) > MAX_MESSAGES:
        raise ValueError(f"more than {MAX_MESSAGES} messages")
    return [_message(item, index) for index, item in enumerate(items)]


def _message(item: Any, index: int) -> Message:
    if not isinstance(item, Mapping):
        raise ValueError(f"messages[{index}] is not an object")
    role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise ValueError(f"messages[{index}] has unknown role {item.get('role')!r}")
    text, images = _content(item.get("content"), index)
    calls = item.get("tool_calls") or ()
    if not isinstance(calls, list | tuple) or not all(isinstance(c, Mapping) for c in calls):
        raise ValueError(f"messages[{index}].tool_calls must be a list of objects")
    legacy = item.get("function_call")
    if isinstance(legacy, Mapping):
        calls = [*calls, {"type": "function", "function": dict(legacy)}]
    return Message(role, text, images=tuple(images), tool_calls=tuple(dict(c) for c in calls))  # type: ignore[arg-type]


def _content(content: Any, index: int) -> tuple[str, list[str]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ValueError(f"messages[{index}].content must be text or a list of parts")
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            texts.append(part[kind])
        elif kind == "image_url" and isinstance(part.get("image_url"), Mapping):
            url = part["image_url"].get("url")
            if isinstance(url, str):
                images.append(url)
        else:
            raise ValueError(f"messages[{index}] has a content part the firewall cannot scan ({kind!r})")
    return "\n".join(texts), images


REASONING_KEYS = ("reasoning_content", "reasoning")
"""Fields in which OpenAI-compatible servers (vLLM, OpenRouter, ...) return a model's reasoning beside its answer."""


def output_text(fields: Mapping[str, Any]) -> str:
    """Everything of an assistant message (or a streamed delta) that reaches the client as text, for the detectors:
    content, refusal and reasoning, joined by newlines. Content or refusal that is not text raises ValueError;
    reasoning in another shape (an object) is read as its JSON."""
    texts: list[str] = []
    for key in ("content", "refusal", *REASONING_KEYS):
        value = fields.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, str):
            texts.append(value)
        elif key in REASONING_KEYS:
            texts.append(json.dumps(value, ensure_ascii=False))
        else:
            raise ValueError(f"the answer's {key} is not text")
    return "\n".join(texts)


def turn_start(messages: Sequence[Message]) -> int:
    """Index of the first message of the newest turn: everything after the last assistant message that answered
    an earlier turn.

    On a first turn that is every message. Assistant messages at the end (a prefilled start of the answer) belong
    to the newest turn together with the messages they follow, so a request cannot end with one to keep its user
    message out of the scan. Earlier turns are taken as scanned when they were new: the wrappers and the proxy see
    every turn of a conversation an app sends through them.
    """
    end = len(messages)
    while end > 0 and messages[end - 1].role == "assistant":
        end -= 1
    for index in range(end - 1, -1, -1):
        if messages[index].role == "assistant":
            return index + 1
    return 0


def render_tool_calls(calls: Sequence[Mapping[str, Any]]) -> str:
    """Tool calls as text a detector can read: the function name, then each argument, strings unescaped."""
    blocks: list[str] = []
    for call in calls:
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        name = function.get("name") or "?"
        arguments = function.get("arguments", "")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except ValueError:
            parsed = arguments
        lines = [f"[tool call: {name}]"]
        if isinstance(parsed, Mapping):
            for key, value in parsed.items():
                if (
                    isinstance(value, str) and "\n" in value
                ):  # code and documents: fenced, so Code Shield reads them
                    lines.append(f"{key}:\n```\n{value}\n```")
                else:
                    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    lines.append(f"{key}: {shown}")
        elif parsed not in ("", None):
            lines.append(parsed if isinstance(parsed, str) else json.dumps(parsed, ensure_ascii=False))
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def with_calls_as_text(message: Message) -> Message:
    """The message detectors see: its tool calls appended to its content, so they are scanned too."""
    if not message.tool_calls:
        return message
    rendered = render_tool_calls(message.tool_calls)
    content = f"{message.content}\n{rendered}" if message.content else rendered
    return Message(message.role, content, message.images)


def completion_dict(model: str, text: str, finish_reason: str = "stop") -> dict[str, Any]:
    """A chat completion object answering `text` (used for refusals)."""
    return {
        "id": f"chatcmpl-purple-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def chunk_dict(
    model: str, text: str | None, finish_reason: str | None, chunk_id: str | None = None
) -> dict[str, Any]:
    """One streaming chunk: a content delta, or a finish reason."""
    delta: dict[str, Any] = {"role": "assistant", "content": text} if text is not None else {}
    return {
        "id": chunk_id or f"chatcmpl-purple-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def completion_chunks(completion: Mapping[str, Any], usage: bool = False) -> list[dict[str, Any]]:
    """A whole chat completion as the chunks a streamed answer would have been: per choice, one delta with the role
    and everything the message holds (tool calls indexed), then its finish reason; a last chunk with the usage when
    `usage` is asked for and the completion has it."""
    head: dict[str, Any] = {
        "id": completion.get("id") or f"chatcmpl-purple-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model") or "",
    }
    if completion.get("system_fingerprint"):
        head["system_fingerprint"] = completion["system_fingerprint"]
    chunks: list[dict[str, Any]] = []
    for position, choice in enumerate(completion.get("choices") or ()):
        index = choice.get("index") if isinstance(choice.get("index"), int) else position
        delta: dict[str, Any] = {"role": "assistant"}
        for key, value in (choice.get("message") or {}).items():
            if key == "tool_calls" and isinstance(value, list):
                value = [{"index": i, **c} if isinstance(c, Mapping) else c for i, c in enumerate(value)]
            if key != "role":
                delta[key] = value
        first = {"index": index, "delta": delta, "finish_reason": None, "logprobs": choice.get("logprobs")}
        last: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
        chunks += [{**head, "choices": [first]}, {**head, "choices": [last]}]
    if usage and isinstance(completion.get("usage"), Mapping):
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks
