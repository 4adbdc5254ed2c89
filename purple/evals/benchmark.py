"""What a benchmark is: a dataset of samples, how each becomes a conversation, and how responses are judged.

A judged record carries `scores`: per-record values whose mean over a group is the metric (a 0/1 flag for a
rate, a number such as BLEU), `groups`: the categories the report breaks metrics down by, and `columns`:
per-record values that set-level metrics read over a whole group (precision, AUPRC; see report/aggregate.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

from purple.types import Message, Verdict


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
    columns: dict[str, float] = field(default_factory=dict)


class JudgeContext(Protocol):
    """What a benchmark's judge may use: an LLM judge (a ChatModel) and the shared Code Shield."""

    @property
    def judge_model(self) -> Any: ...

    @property
    def code_shield(self) -> Any: ...


@runtime_checkable
class DetectorBenchmark(Protocol):
    """A benchmark of a detector (--guard), not of a model: nothing is generated; the runner gives each sample's
    conversation to the detector and `grade` compares each verdict with the sample's gold label."""

    name: str
    dataset: str
    metrics: tuple[str, ...]

    def load(self, path: Path) -> list[Sample]: ...

    def grade(self, samples: Sequence[Sample], verdicts: Sequence[Verdict]) -> list[Judged]: ...


class Benchmark(Protocol):
    """A benchmark. `dataset` is the file's path relative to a CyberSecEval-format data folder; `metrics` names
    what its judged records score (the metrics --fail-on may name, besides count and errors)."""

    name: str
    dataset: str
    metrics: tuple[str, ...]
    needs_judge_model: bool

    def load(self, path: Path) -> list[Sample]: ...

    async def judge(self, samples: Sequence[Sample], responses: Sequence[str], ctx: JudgeContext) -> list[Judged]: ...


@dataclass(frozen=True)
class Reply:
    """One answer of the model under test inside a dialogue: its text or the error, and whether it was cached."""

    text: str
    error: str | None = None
    cached: bool = False


Attacker: TypeAlias = Callable[[Sequence[Message]], Awaitable[Reply]]
"""The model under test as a multi-turn benchmark sees it: the conversation so far in, its next reply out."""


@dataclass(frozen=True)
class Dialogue:
    """A multi-turn sample as played: the transcript (stored as the record's response), scores of how it ended
    (merged under the judge's scores), the error that cut it short, and whether every attacker turn was cached."""

    transcript: str
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False


@runtime_checkable
class MultiTurn(Benchmark, Protocol):
    """A benchmark whose samples are dialogues. The runner calls converse() instead of one generation, passing the
    model under test as an Attacker (same backend, timeout, retries and response cache as one generation, one
    cache entry per turn keyed on the conversation so far); then judge() grades the transcripts as usual."""

    async def converse(self, sample: Sample, attacker: Attacker, ctx: JudgeContext) -> Dialogue: ...


@runtime_checkable
class BatchJudged(Benchmark, Protocol):
    """A benchmark whose judge is far cheaper per response in big batches: Code Shield starts one semgrep process
    per judge() call, so instruct and autocomplete judge a few hundred responses per call. The runner buffers
    generated responses (already in the response cache) and calls judge() with `judge_batch` of them, fewer at the
    end. Any other benchmark is judged one --concurrency chunk per call, several calls at once (an LLM judge's
    requests run concurrently, so bigger calls would not make it faster)."""

    judge_batch: int


@runtime_checkable
class Generated(Benchmark, Protocol):
    """A benchmark whose cases come from code (and a seed), not from --data-dir. The runner writes generate()'s
    rows as JSON into the run folder under the name `dataset` and load()s them from there, so the manifest hashes
    exactly the cases that ran."""

    def generate(self) -> list[dict[str, Any]]: ...


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
    except RecursionError:
        raise EvalError(f"dataset {path} is nested too deeply to read") from None
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
