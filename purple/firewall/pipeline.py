"""The firewall pipeline: run the policy's detectors for a message's role in parallel, within the time budget,
and turn their verdicts into one decision.

Aggregation (the same for `scan` and `ascan`): a block wins; otherwise human review wins over allow. The result's
score is the highest score among the verdicts that carry the winning decision. Verdicts and reasons are listed
most severe first and, within a decision, in the order the policy lists the detectors, whatever order the
detectors finished in.

A detector that raises, returns something other than a Verdict, reports an error in its verdict, or has no
verdict when the budget runs out, counts as blocking (fail-closed) or allowing (fail-open) as the policy says.
With `stop_on_block`, the scan returns as soon as one detector blocks; the others are listed as skipped.

Detectors are built once, when the Firewall is made, and shared by all scans. Async scans that run at the same
time hand each detector their conversations together (one `acheck_many` call per detector per batch).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from purple.firewall import registry
from purple.firewall.policy import DetectorPolicy, Policy, PolicyError, decide, load_policy
from purple.firewall.presets import preset
from purple.types import Conversation, Decision, Detector, Message, Role, Verdict

MAX_ERROR_CHARS = 300
MAX_BATCH = 32


@dataclass(frozen=True)
class FirewallResult:
    """The decision on one message, with every detector's verdict (most severe first)."""

    decision: Decision
    score: float
    reason: str
    role: Role
    verdicts: tuple[Verdict, ...] = ()
    skipped: tuple[str, ...] = ()
    elapsed_ms: float = 0.0

    @property
    def blocked(self) -> bool:
        return self.decision is Decision.BLOCK

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-ready record (finding locations, never the matched text)."""
        return {
            "decision": str(self.decision),
            "score": round(self.score, 6),
            "reason": self.reason,
            "role": self.role,
            "verdicts": [
                {
                    "detector": v.detector,
                    "decision": str(v.decision),
                    "score": round(v.score, 6),
                    "labels": list(v.labels),
                    "reason": v.reason,
                    "error": v.error,
                    "findings": [{"rule_id": f.rule_id, "cwe": f.cwe, "line": f.line, "column": f.column}
                                 for f in v.findings],
                }
                for v in self.verdicts
            ],
            "skipped": list(self.skipped),
            "elapsed_ms": round(self.elapsed_ms, 3),
        }


@dataclass(frozen=True)
class TraceResult:
    """The results of scanning messages of a trace in order; `blocked_at` is the index of the first block."""

    results: tuple[FirewallResult, ...]
    start: int = 0

    @property
    def decision(self) -> Decision:
        return max((r.decision for r in self.results), key=lambda d: d.rank, default=Decision.ALLOW)

    @property
    def blocked(self) -> bool:
        return self.decision is Decision.BLOCK

    @property
    def blocked_at(self) -> int | None:
        return next((self.start + i for i, r in enumerate(self.results) if r.blocked), None)

    @property
    def worst(self) -> FirewallResult | None:
        """The first result with the most severe decision."""
        top = self.decision
        return next((r for r in self.results if r.decision is top), None)

    @property
    def reason(self) -> str:
        worst = self.worst
        return worst.reason if worst is not None else "nothing to scan"


def aggregate(role: Role, verdicts: Sequence[Verdict], skipped: Sequence[str] = (), elapsed_ms: float = 0.0) -> FirewallResult:
    """One decision from verdicts given in policy order (see the module docstring for the rules)."""
    if not verdicts:
        return FirewallResult(Decision.ALLOW, 0.0, f"no detector for {role} messages", role, (), tuple(skipped), elapsed_ms)
    decision = max((v.decision for v in verdicts), key=lambda d: d.rank)
    score = max(v.score for v in verdicts if v.decision is decision)
    ordered = tuple(sorted(verdicts, key=lambda v: -v.decision.rank))  # stable: policy order within a decision
    flagged = [v for v in ordered if v.decision is not Decision.ALLOW]
    if flagged:
        reason = "; ".join(f"{v.detector}: {v.reason} (score {v.score:.2f})" for v in flagged)
    else:
        reason = "allowed by " + ", ".join(v.detector for v in ordered)
    return FirewallResult(decision, score, reason, role, ordered, tuple(skipped), elapsed_ms)


class Firewall:
    """Scans messages with a policy. Build once and reuse: detectors are built here.

    `policy` is a Policy, a preset name or a YAML path (default: the chatbot preset). Raises PolicyError when a
    detector cannot be built (the message names the policy line when it came from a file). `notes` lists the
    detectors that are switched off by configuration (for instance the alignment check without a model).
    """

    def __init__(self, policy: Policy | str | Path | None = None) -> None:
        if policy is None:
            policy = preset()
        elif not isinstance(policy, Policy):
            policy = load_policy(policy)
        self.policy = policy
        self.notes: list[str] = []
        self.detectors: dict[str, Detector] = {}
        for name in policy.used():
            settings = policy.detector(name)
            detector = _build(name, settings)
            if detector is None:
                entry = registry.DETECTORS[str(settings.use)]
                self.notes.append(f"{name} is off: {entry.off_reason}")
            else:
                self.detectors[name] = detector
        self._plans: dict[str, tuple[tuple[str, Detector, DetectorPolicy], ...]] = {
            role: tuple((n, self.detectors[n], policy.detector(n)) for n in names if n in self.detectors)
            for role, names in policy.roles.items()
        }
        self._pool = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.detectors)), thread_name_prefix="purple-fw")
        self._batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Batcher]] = (
            weakref.WeakKeyDictionary()
        )
        self._batchers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Firewall(policy={self.policy.name!r}, detectors={list(self.detectors)})"

    def detectors_for(self, role: Role) -> list[str]:
        return [name for name, _, _ in self._plans.get(role, ())]

    # ------------------------------------------------------------------------------------------------ sync
    def scan(self, message: Message, trace: Conversation = ()) -> FirewallResult:
        """Scan `message` (its detectors see `trace` + [message])."""
        started = time.perf_counter()
        plan = self._plans.get(message.role, ())
        early = self._precheck(message, plan, started)
        if early is not None:
            return early
        conversation = [*trace, message]
        futures: dict[Future[Verdict], str] = {self._pool.submit(d.check, conversation): n for n, d, _ in plan}
        deadline = started + self.policy.budget_ms / 1000
        verdicts: dict[str, Verdict] = {}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=max(0.0, deadline - time.perf_counter()), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                error = future.exception()
                verdicts[futures[future]] = self._settle(futures[future], error or future.result())
            if self._should_stop(verdicts):
                break
        for future in pending:
            future.cancel()
        return self._finish(message.role, plan, verdicts, [futures[f] for f in pending], started)

    def replay(self, trace: Conversation, start: int = 0, stop_on_block: bool = True) -> TraceResult:
        """Scan `trace[start:]` message by message, each with the messages before it (an agent's run).

        Stops at the first block unless `stop_on_block` is false.
        """
        results: list[FirewallResult] = []
        for index in range(start, len(trace)):
            result = self.scan(trace[index], trace[:index])
            results.append(result)
            if stop_on_block and result.blocked:
                break
        return TraceResult(tuple(results), start)

    # ----------------------------------------------------------------------------------------------- async
    async def ascan(self, message: Message, trace: Conversation = ()) -> FirewallResult:
        """`scan` for async code: the same decisions, with detectors' async paths and cross-request batching."""
        started = time.perf_counter()
        plan = self._plans.get(message.role, ())
        early = self._precheck(message, plan, started)
        if early is not None:
            return early
        conversation = [*trace, message]
        batchers = self._loop_batchers()
        tasks = {asyncio.ensure_future(batchers[n].check(conversation)): n for n, _, _ in plan}
        deadline = started + self.policy.budget_ms / 1000
        verdicts: dict[str, Verdict] = {}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=max(0.0, deadline - time.perf_counter()), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break
                for task in done:
                    error = task.exception()
                    verdicts[tasks[task]] = self._settle(tasks[task], error or task.result())
                if self._should_stop(verdicts):
                    break
        finally:
            for task in pending:
                task.cancel()
        return self._finish(message.role, plan, verdicts, [tasks[t] for t in pending], started)

    async def areplay(self, trace: Conversation, start: int = 0, stop_on_block: bool = True) -> TraceResult:
        """`replay` for async code."""
        results: list[FirewallResult] = []
        for index in range(start, len(trace)):
            result = await self.ascan(trace[index], trace[:index])
            results.append(result)
            if stop_on_block and result.blocked:
                break
        return TraceResult(tuple(results), start)

    def close(self) -> None:
        """Stop the worker threads (detectors stay built; shared ones are used by other firewalls)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --------------------------------------------------------------------------------------------- helpers
    def _precheck(self, message: Message, plan: Sequence[Any], started: float) -> FirewallResult | None:
        if not plan:
            return aggregate(message.role, [], elapsed_ms=_ms_since(started))
        if len(message.content) > self.policy.max_chars:
            what = f"message of {len(message.content):,} characters is over the policy's max_chars ({self.policy.max_chars:,})"
            verdicts = [self._failure(name, what) for name, _, _ in plan]
            return aggregate(message.role, verdicts, elapsed_ms=_ms_since(started))
        return None

    def _should_stop(self, verdicts: dict[str, Verdict]) -> bool:
        return self.policy.stop_on_block and any(v.decision is Decision.BLOCK for v in verdicts.values())

    def _finish(
        self, role: Role, plan: Sequence[tuple[str, Detector, DetectorPolicy]], verdicts: dict[str, Verdict],
        unfinished: list[str], started: float,
    ) -> FirewallResult:
        skipped: list[str] = []
        if unfinished:
            stopped = self._should_stop(verdicts)
            for name in unfinished:
                if stopped:
                    skipped.append(name)
                else:
                    verdicts[name] = self._failure(name, f"no verdict within the {self.policy.budget_ms:g} ms budget")
        ordered = [verdicts[name] for name, _, _ in plan if name in verdicts]
        skipped_in_order = [name for name, _, _ in plan if name in skipped]
        return aggregate(role, ordered, skipped_in_order, _ms_since(started))

    def _settle(self, name: str, outcome: Verdict | BaseException) -> Verdict:
        """The verdict that counts: thresholds applied, errors turned into the fail mode's decision."""
        if isinstance(outcome, BaseException):
            return self._failure(name, f"{type(outcome).__name__}: {outcome}")
        if not isinstance(outcome, Verdict):
            return self._failure(name, f"returned {type(outcome).__name__}, not a Verdict")
        settings = self.policy.detector(name)
        decision = decide(outcome.score, settings.review_at, settings.block_at) if settings.thresholds else outcome.decision
        verdict = replace(outcome, detector=name, decision=decision)
        if outcome.error and decision is not Decision.BLOCK and self.policy.fail_mode(name) == "closed":
            verdict = replace(
                verdict, decision=Decision.BLOCK, reason=f"{verdict.reason}; error: {_clip(outcome.error)}; fail-closed"
            )
        return verdict

    def _failure(self, name: str, what: str) -> Verdict:
        what = _clip(what)
        if self.policy.fail_mode(name) == "closed":
            return Verdict(Decision.BLOCK, 0.0, name, reason=f"{what}; fail-closed", error=what)
        return Verdict(Decision.ALLOW, 0.0, name, reason=f"{what}; fail-open", error=what)

    def _loop_batchers(self) -> dict[str, _Batcher]:
        loop = asyncio.get_running_loop()
        with self._batchers_lock:
            found = self._batchers.get(loop)
            if found is None:
                found = {name: _Batcher(detector) for name, detector in self.detectors.items()}
                self._batchers[loop] = found
        return found


class _Batcher:
    """Hands the conversations that async scans ask one detector about at the same time to it as one batch.

    The first request starts a batch at once; requests arriving meanwhile wait for it and go together in the next.
    When a batch raises, its conversations are retried one by one, so one bad input fails only itself.
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.queue: list[tuple[list[Message], asyncio.Future[Verdict]]] = []
        self.task: asyncio.Task[None] | None = None

    async def check(self, conversation: list[Message]) -> Verdict:
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self.queue.append((conversation, future))
        if self.task is None:
            self.task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                live = [(c, f) for c, f in batch if not f.done()]
                if live:
                    await self._run(live)
        finally:
            self.task = None

    async def _run(self, live: list[tuple[list[Message], asyncio.Future[Verdict]]]) -> None:
        try:
            verdicts = await self.detector.acheck_many([c for c, _ in live])
            if len(verdicts) != len(live):
                raise RuntimeError(f"returned {len(verdicts)} verdicts for {len(live)} conversations")
        except Exception as exc:  # noqa: BLE001 - a detector failure becomes the fail mode's decision
            if len(live) == 1:
                _resolve(live[0][1], exc)
                return
            singles = await asyncio.gather(*(_one(self.detector.acheck, c) for c, _ in live))
            for (_, future), outcome in zip(live, singles):
                _resolve(future, outcome)
            return
        for (_, future), verdict in zip(live, verdicts):
            _resolve(future, verdict)


async def _one(call: Callable[[list[Message]], Awaitable[Verdict]], conversation: list[Message]) -> Verdict | Exception:
    try:
        return await call(conversation)
    except Exception as exc:  # noqa: BLE001
        return exc


def _resolve(future: asyncio.Future[Verdict], outcome: Verdict | Exception) -> None:
    if future.done():  # the scan that asked already gave up (budget, early stop, cancellation)
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _build(name: str, settings: DetectorPolicy) -> Detector | None:
    if not isinstance(settings.use, str):
        return settings.use
    try:
        return registry.build(settings.use, dict(settings.options))
    except Exception as exc:  # noqa: BLE001 - any failure to build is a policy problem, reported on one line
        where = f"{settings.where}: " if settings.where else ""
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolicyError(f"{where}detector {name!r} cannot be built: {message}") from None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + "..."


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
