"""The firewall pipeline: run the policy's detectors for a message's role in parallel, within the time budget,
and turn their verdicts into one decision.

Aggregation (the same for `scan` and `ascan`): a block wins; otherwise human review wins over allow. The result's
score is the highest score among the verdicts that carry the winning decision. Verdicts and reasons are listed
most severe first and, within a decision, in the order the policy lists the detectors, whatever order the
detectors finished in. The reason names every verdict that is not an allow, and every detector error (so a
fail-open allow still says what failed).

A detector that raises, returns something other than a Verdict, reports an error in its verdict, or has no
verdict when the budget runs out, counts as blocking (fail-closed) or allowing (fail-open) as the policy says.
With `stop_on_block`, the scan returns as soon as one detector blocks; the others are listed as skipped.

Detectors are built once, when the Firewall is made, and shared by all scans. The cheap, linear-time ones (hidden
Unicode, regex, Code Shield's regex tier) run in the calling thread while the others run on a thread pool; async
scans that run at the same time hand each pooled detector their conversations together (one `acheck_many` call
per detector per batch).
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
from purple.firewall.messages import with_calls_as_text
from purple.firewall.policy import DetectorPolicy, Policy, PolicyError, decide, load_policy
from purple.firewall.presets import preset
from purple.types import Conversation, Decision, Detector, Message, Role, Verdict

MAX_ERROR_CHARS = 300
MAX_BATCH = 16
"""The most conversations per detector call from the async batcher (fewer when the detector is slow; see _Batcher)."""


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
                    "findings": [
                        {"rule_id": f.rule_id, "cwe": f.cwe, "line": f.line, "column": f.column}
                        for f in v.findings
                    ],
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


def aggregate(
    role: Role, verdicts: Sequence[Verdict], skipped: Sequence[str] = (), elapsed_ms: float = 0.0
) -> FirewallResult:
    """One decision from verdicts given in policy order (see the module docstring for the rules)."""
    if not verdicts:
        return FirewallResult(
            Decision.ALLOW, 0.0, f"no detector for {role} messages", role, (), tuple(skipped), elapsed_ms
        )
    decision = max((v.decision for v in verdicts), key=lambda d: d.rank)
    score = max(v.score for v in verdicts if v.decision is decision)
    ordered = tuple(
        sorted(verdicts, key=lambda v: -v.decision.rank)
    )  # stable: policy order within a decision
    flagged = [v for v in ordered if v.decision is not Decision.ALLOW or v.error]
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
        self._settings = {name: policy.detector(name) for name in policy.used()}
        for name, settings in self._settings.items():
            detector = _build(name, settings)
            if detector is None:
                self.notes.append(f"{name} is off: {registry.DETECTORS[str(settings.use)].off_reason}")
            else:
                self.detectors[name] = detector
        registry_built = {
            n: self._settings[n] for n in self.detectors if isinstance(self._settings[n].use, str)
        }
        self._owned = [n for n, s in registry_built.items() if not registry.DETECTORS[str(s.use)].shared]
        self._inline = {
            n for n, s in registry_built.items() if registry.runs_inline(str(s.use), dict(s.options))
        }
        self._plans: dict[str, tuple[tuple[str, Detector, DetectorPolicy], ...]] = {
            role: tuple((n, self.detectors[n], self._settings[n]) for n in names if n in self.detectors)
            for role, names in policy.roles.items()
        }
        self._pool = ThreadPoolExecutor(
            max_workers=max(4, 2 * len(self.detectors)), thread_name_prefix="purple-fw"
        )
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
        """Scan `message`; its detectors see `trace` + [message], with the message's tool calls as text."""
        started = time.perf_counter()
        message = with_calls_as_text(message)
        plan = self._plans.get(message.role, ())
        early = self._precheck(message, plan, started)
        if early is not None:
            return early
        conversation = [*trace, message]
        futures: dict[Future[Verdict], str] = {
            self._pool.submit(d.check, conversation): n for n, d, _ in plan if n not in self._inline
        }
        verdicts = self._run_inline(plan, conversation)
        deadline = started + self.policy.budget_ms / 1000
        pending = set(futures)
        while pending and not self._should_stop(verdicts):
            done, pending = wait(
                pending, timeout=max(0.0, deadline - time.perf_counter()), return_when=FIRST_COMPLETED
            )
            if not done:
                break
            for future in done:
                error = future.exception()
                verdicts[futures[future]] = self._settle(futures[future], error or future.result())
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
        message = with_calls_as_text(message)
        plan = self._plans.get(message.role, ())
        early = self._precheck(message, plan, started)
        if early is not None:
            return early
        conversation = [*trace, message]
        batchers = self._loop_batchers()
        tasks = {
            asyncio.ensure_future(batchers[n].check(conversation)): n
            for n, _, _ in plan
            if n not in self._inline
        }
        verdicts = self._run_inline(plan, conversation)
        deadline = started + self.policy.budget_ms / 1000
        pending = set(tasks)
        try:
            while pending and not self._should_stop(verdicts):
                done, pending = await asyncio.wait(
                    pending,
                    timeout=max(0.0, deadline - time.perf_counter()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    break
                for task in done:
                    error = task.exception()
                    verdicts[tasks[task]] = self._settle(tasks[task], error or task.result())
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
        """Stop the worker threads and close the detectors this firewall built for itself (models it loaded).

        Shared registry detectors and Detector objects handed in by a Python policy are left to their owners.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        for name in self._owned:
            close = getattr(self.detectors[name], "close", None)
            if callable(close):
                close()

    # --------------------------------------------------------------------------------------------- helpers
    def _precheck(self, message: Message, plan: Sequence[Any], started: float) -> FirewallResult | None:
        if not plan:
            return aggregate(message.role, [], elapsed_ms=_ms_since(started))
        if len(message.content) > self.policy.max_chars:
            what = f"message of {len(message.content):,} characters is over the policy's max_chars ({self.policy.max_chars:,})"
            verdicts = [self._failure(name, what) for name, _, _ in plan]
            return aggregate(message.role, verdicts, elapsed_ms=_ms_since(started))
        return None

    def _run_inline(
        self, plan: Sequence[tuple[str, Detector, DetectorPolicy]], conversation: list[Message]
    ) -> dict[str, Verdict]:
        """Run the cheap detectors here, while the others work on the pool (see `registry.runs_inline`)."""
        verdicts: dict[str, Verdict] = {}
        for name, detector, _ in plan:
            if name in self._inline:
                try:
                    outcome: Verdict | BaseException = detector.check(conversation)
                except Exception as exc:  # noqa: BLE001 - a detector failure becomes the fail mode's decision
                    outcome = exc
                verdicts[name] = self._settle(name, outcome)
                if self._should_stop(verdicts):
                    break
        return verdicts

    def _should_stop(self, verdicts: dict[str, Verdict]) -> bool:
        return self.policy.stop_on_block and any(v.decision is Decision.BLOCK for v in verdicts.values())

    def _finish(
        self,
        role: Role,
        plan: Sequence[tuple[str, Detector, DetectorPolicy]],
        verdicts: dict[str, Verdict],
        unfinished: list[str],
        started: float,
    ) -> FirewallResult:
        skipped: list[str] = []
        if unfinished:
            stopped = self._should_stop(verdicts)
            for name in unfinished:
                if stopped:
                    skipped.append(name)
                else:
                    verdicts[name] = self._failure(
                        name, f"no verdict within the {self.policy.budget_ms:g} ms budget"
                    )
        ordered = [verdicts[name] for name, _, _ in plan if name in verdicts]
        skipped_in_order = [name for name, _, _ in plan if name in skipped]
        return aggregate(role, ordered, skipped_in_order, _ms_since(started))

    def _settle(self, name: str, outcome: Verdict | BaseException) -> Verdict:
        """The verdict that counts: thresholds applied, errors turned into the fail mode's decision."""
        if isinstance(outcome, BaseException):
            return self._failure(name, f"{type(outcome).__name__}: {outcome}")
        if not isinstance(outcome, Verdict):
            return self._failure(name, f"returned {type(outcome).__name__}, not a Verdict")
        settings = self._settings[name]
        decision = (
            decide(outcome.score, settings.review_at, settings.block_at)
            if settings.thresholds
            else outcome.decision
        )
        verdict = replace(outcome, detector=name, decision=decision)
        if outcome.error and decision is not Decision.BLOCK:  # the reason says what failed in either mode
            closed = self._closed(name)
            mode = "fail-closed" if closed else "fail-open"
            verdict = replace(
                verdict,
                decision=Decision.BLOCK if closed else decision,
                reason=f"{verdict.reason}; error: {_clip(outcome.error)}; {mode}",
            )
        return verdict

    def _closed(self, name: str) -> bool:
        """The detector's fail mode (its own, else the policy's) is closed."""
        return (self._settings[name].on_error or self.policy.on_error) == "closed"

    def _failure(self, name: str, what: str) -> Verdict:
        what = _clip(what)
        if self._closed(name):
            return Verdict(Decision.BLOCK, 0.0, name, reason=f"{what}; fail-closed", error=what)
        return Verdict(Decision.ALLOW, 0.0, name, reason=f"{what}; fail-open", error=what)

    def _loop_batchers(self) -> dict[str, _Batcher]:
        loop = asyncio.get_running_loop()
        with self._batchers_lock:
            found = self._batchers.get(loop)
            if found is None:
                budget_s = self.policy.budget_ms / 1000
                found = {name: _Batcher(detector, budget_s) for name, detector in self.detectors.items()}
                self._batchers[loop] = found
        return found


class _Batcher:
    """Hands the conversations that async scans ask one detector about at the same time to it as one batch.

    The first request starts a batch at once; requests arriving meanwhile wait for it and go together in the next.
    A batch is sized to take at most half the scan budget at the detector's recent speed (so a slow model does not
    make every request in a big batch miss its budget), and when more are waiting than fit, the newest go first:
    under overload the oldest are the ones whose budget runs out soonest, and serving them first would spend the
    detector on answers nobody waits for (a scan that gives up takes its conversation out of the queue). When a
    batch raises, its conversations are retried one by one, so one bad input fails only itself.
    """

    def __init__(self, detector: Detector, budget_s: float) -> None:
        self.detector = detector
        self.budget_s = budget_s
        self.seconds_per_item = 0.0  # moving average over recent batches
        self.queue: list[tuple[list[Message], asyncio.Future[Verdict]]] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def batch_size(self) -> int:
        if self.seconds_per_item <= 0:
            return MAX_BATCH
        return max(1, min(MAX_BATCH, int(self.budget_s / 2 / self.seconds_per_item)))

    async def check(self, conversation: list[Message]) -> Verdict:
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self.queue.append((conversation, future))
        if self.task is None:
            self.task = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                self.queue = [(c, f) for c, f in self.queue if not f.done()]
                size = self.batch_size
                live, self.queue = self.queue[-size:], self.queue[:-size]
                if live:
                    started = time.perf_counter()
                    await self._run(live)
                    per_item = (time.perf_counter() - started) / len(live)
                    previous = self.seconds_per_item
                    self.seconds_per_item = per_item if previous <= 0 else 0.7 * previous + 0.3 * per_item
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


async def _one(
    call: Callable[[list[Message]], Awaitable[Verdict]], conversation: list[Message]
) -> Verdict | Exception:
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
