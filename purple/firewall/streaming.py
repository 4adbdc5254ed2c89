"""Streamed output, checked in windows: chunks are held back until `window` more characters have arrived (and more
output follows), the whole output so far is scanned, and the held chunks are released only if it passes. The end
of the stream is always checked before the last chunks go out. Used by the client wrapper and the proxy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from purple.firewall.messages import REASONING_KEYS, output_text
from purple.firewall.pipeline import Firewall, FirewallResult
from purple.types import Decision, Message

LEGACY_CALL = -1
"""Where a streamed `function_call` (the API's older single-call form) collects, apart from indexed tool calls."""


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, str]] = field(default_factory=dict)

    def message(self) -> Message:
        calls = tuple(
            {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(self.calls.items())
        )
        return Message("assistant", "".join(self.text), tool_calls=calls)


class StreamCheck:
    """Accumulates chat-completion chunks (as dicts) and scans the output so far when a window is full."""

    def __init__(self, firewall: Firewall, trace: Sequence[Message], window: int | None = None) -> None:
        self.firewall = firewall
        self.trace = list(trace)
        self.window = window or firewall.policy.stream_window
        self._choices: dict[int, _Choice] = {}
        self._unchecked = 0

    def feed(self, chunk: Mapping[str, Any]) -> None:
        """Add one chunk's deltas (content, refusal, reasoning and call fragments, per choice). Content that is not
        text raises ValueError: the stream cannot be checked."""
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping):
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, Mapping):
                continue
            index = choice.get("index") if isinstance(choice.get("index"), int) else 0
            state = self._choices.setdefault(index, _Choice())
            piece = output_text(delta)  # content, refusal, reasoning; ValueError when content is not text
            if piece:
                state.text.append(piece)
                self._unchecked += len(piece)
            calls = [c for c in delta.get("tool_calls") or () if isinstance(c, Mapping)]
            if isinstance(delta.get("function_call"), Mapping):  # the legacy single call, kept apart from tool calls
                calls.append({"index": LEGACY_CALL, "function": delta["function_call"]})
            for call in calls:
                slot = state.calls.setdefault(
                    call.get("index") if isinstance(call.get("index"), int) else 0,
                    {"name": "", "arguments": ""},
                )
                function = call.get("function") or {}
                if isinstance(function, Mapping):
                    for key in ("name", "arguments"):
                        piece = function.get(key)
                        if isinstance(piece, str):
                            slot[key] += piece
                            self._unchecked += len(piece)

    @property
    def due(self) -> bool:
        """A full window arrived since the last check."""
        return self._unchecked >= self.window

    def due_before(self, chunk: Mapping[str, Any]) -> bool:
        """Check now, before feeding `chunk`: a full window is waiting and `chunk` brings more output.

        Deciding a window only when more output follows means the check at the end of the stream is always the
        one that covers the whole answer (and is the one marked final).
        """
        return self.due and _carries_output(chunk)

    def check(self) -> FirewallResult:
        """Scan every choice's output so far; the first blocking (else most severe) result."""
        results = [self.firewall.scan(m, self.trace) for m in self._messages()]
        return self._done(results)

    async def acheck(self) -> FirewallResult:
        results = [await self.firewall.ascan(m, self.trace) for m in self._messages()]
        return self._done(results)

    def _messages(self) -> list[Message]:
        return [state.message() for _, state in sorted(self._choices.items())] or [Message("assistant", "")]

    def _done(self, results: list[FirewallResult]) -> FirewallResult:
        self._unchecked = 0
        return (
            max(results, key=lambda r: r.decision.rank)
            if results
            else FirewallResult(Decision.ALLOW, 0.0, "no output", "assistant")
        )


def _carries_output(chunk: Mapping[str, Any]) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, Mapping) else None
        if isinstance(delta, Mapping) and any(
            delta.get(key) for key in ("content", "refusal", *REASONING_KEYS, "tool_calls", "function_call")
        ):
            return True
    return False
