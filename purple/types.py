"""The few types every part of Purple speaks: messages, verdicts, findings and the Detector protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

Role = Literal["system", "user", "assistant", "tool", "memory"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool", "memory")


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation. `images` are local paths or URLs; `tool_calls` are provider dicts."""

    role: Role
    content: str
    images: tuple[str, ...] = ()
    tool_calls: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown message role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be text, got {type(self.content).__name__}")


Conversation: TypeAlias = Sequence[Message]
"""A conversation is an ordered sequence of messages: the firewall's trace, Llama Guard's input, an eval prompt."""


def user(text: str) -> Message:
    return Message("user", text)


def assistant(text: str) -> Message:
    return Message("assistant", text)


class Decision(StrEnum):
    """What to do with a message. Ordered by severity: allow < human_review < block."""

    ALLOW = "allow"
    HUMAN_REVIEW = "human_review"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _DECISION_RANK[self]


_DECISION_RANK = {Decision.ALLOW: 0, Decision.HUMAN_REVIEW: 1, Decision.BLOCK: 2}


class Severity(StrEnum):
    """Severity of a code finding. Ordered: advice < warning < error."""

    ADVICE = "advice"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.ADVICE: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True, slots=True)
class Finding:
    """A located issue: which rule fired, where (1-based line and column) and on what text."""

    rule_id: str
    cwe: str
    severity: Severity
    message: str
    line: int
    column: int
    snippet: str
    language: str
    path: str | None = None
    tier: Literal["regex", "semgrep"] = "regex"
    end_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "cwe": self.cwe,
            "severity": str(self.severity),
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line or self.line,
            "snippet": self.snippet,
            "language": self.language,
            "tier": self.tier,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What every detector returns.

    `score` is in [0, 1] and means how likely the input is the harm the detector looks for (not confidence
    in the decision). `labels` are the detector's codes (S1..S14, CWE-78, injection, ...).
    """

    decision: Decision
    score: float
    detector: str
    labels: tuple[str, ...] = ()
    reason: str = ""
    findings: tuple[Finding, ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"verdict score must be in [0, 1], got {self.score}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "decision": str(self.decision),
            "score": self.score,
            "labels": list(self.labels),
            "reason": self.reason,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
        }


@runtime_checkable
class Detector(Protocol):
    """A detector looks at a conversation (usually its last message) and returns a Verdict.

    `check_many` is the batched fast path; `check` and the async twins may wrap it.
    """

    name: str

    def check(self, conversation: Conversation) -> Verdict: ...

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]: ...

    async def acheck(self, conversation: Conversation) -> Verdict: ...

    async def acheck_many(self, conversations: Sequence[Conversation]) -> list[Verdict]: ...


class BatchDetector:
    """Base for detectors whose real work is `check_many`; supplies the single and async forms."""

    name: str = "detector"

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        raise NotImplementedError

    def check(self, conversation: Conversation) -> Verdict:
        return self.check_many([conversation])[0]

    async def acheck(self, conversation: Conversation) -> Verdict:
        return (await self.acheck_many([conversation]))[0]

    async def acheck_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        return await asyncio.to_thread(self.check_many, list(conversations))


def as_conversation(value: str | Message | Conversation) -> list[Message]:
    """Accept a bare string (a user turn), one message, or a conversation."""
    if isinstance(value, str):
        return [Message("user", value)]
    if isinstance(value, Message):
        return [value]
    return list(value)


@dataclass(frozen=True, slots=True)
class Completion:
    """One model answer. `error` is set instead of raising when this item failed.

    `logprobs[i]` maps the most likely tokens at generated position i to their log-probabilities;
    `tokens[i]` is the token actually generated there (when the backend reports it).
    """

    text: str
    logprobs: tuple[dict[str, float], ...] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error: str | None = None
    tokens: tuple[str, ...] | None = None
