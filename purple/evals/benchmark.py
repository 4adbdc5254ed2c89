"""What a benchmark is: a dataset of samples, how each becomes a conversation, and how responses are judged.

A judged record carries `scores`: per-record values whose mean over a group is the metric (a 0/1 flag for a
rate, a number such as BLEU), and `groups`: the categories the report breaks metrics down by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from purple.types import Message


class EvalError(Exception):
    """A problem a user can fix (missing or malformed dataset, bad threshold): one readable line."""


@dataclass(frozen=True)
class Sample:
    """One test case: its stable id, the conversation sent to the model, and the dataset fields kept as they are."""

    id: str
    conversation: tuple[Message, ...]
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Judged:
    """The judge's view of one response: scores (metric -> per-record value), group labels, detail for the report."""

    scores: dict[str, float]
    groups: dict[str, str]
    judge_output: str = ""
    findings: tuple[dict[str, Any], ...] = ()
    error: str | None = None


class JudgeContext(Protocol):
    """What a benchmark's judge may use: an LLM judge (a ChatModel) and the shared Code Shield."""

    @property
    def judge_model(self) -> Any: ...

    @property
    def code_shield(self) -> Any: ...


class Benchmark(Protocol):
    """A benchmark. `dataset` is the file's path relative to a CyberSecEval-format data folder."""

    name: str
    dataset: str
    needs_judge_model: bool

    def load(self, path: Path) -> list[Sample]: ...

    async def judge(self, samples: Sequence[Sample], responses: Sequence[str], ctx: JudgeContext) -> list[Judged]: ...


def read_json_list(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """A JSON list of objects (CyberSecEval's dataset shape), each checked for the fields a benchmark needs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvalError(f"dataset not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read dataset {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"dataset {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise EvalError(f"dataset {path} must be a JSON list of test cases")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise EvalError(f"dataset {path}: test case {index} is not a JSON object")
        missing = [name for name in required if name not in row]
        if missing:
            raise EvalError(f"dataset {path}: test case {index} lacks field(s) {', '.join(missing)}")
    return data


def even_stride(samples: Sequence[Sample], limit: int | None) -> list[Sample]:
    """At most `limit` samples spread evenly over the dataset (deterministic: the same every run)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    if limit <= 0:
        return []
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


def text_of(value: Any) -> str:
    """A dataset field as text (lists such as interpreter's attack_type become comma-joined)."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)
