"""The runner: every model against every benchmark, concurrently, cached, journalled and resumable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from purple.evals.benchmark import (
    Attacker,
    Benchmark,
    DetectorBenchmark,
    EvalError,
    Generated,
    Judged,
    MultiTurn,
    Reply,
    Sample,
    even_stride,
)
from purple.evals.cache import ResponseCache, cache_key
from purple.evals.guards import GuardSpec, open_guard, parse_guard
from purple.evals.journal import Journal, read_records
from purple.evals.registry import expand, get_benchmark
from purple.models.base import ChatModel, GenerationParams
from purple.models.loader import OPTIONS, load_model
from purple.models.spec import parse_spec
from purple.resources import data_dir
from purple.types import Message, Verdict

JOURNAL = "records.jsonl"
MANIFEST = "manifest.json"
IN_FLIGHT_CHUNKS = 4
"""Chunks of `concurrency` cases in flight at once, so the backend always has the next requests queued."""
GUARD_CHUNK = 64
"""Conversations per check_many call of a detector under test (--guard); each chunk is one journal write."""
PACKAGES = ("purple", "torch", "transformers", "httpx", "pandas", "jinja2", "semgrep")


@dataclass
class RunConfig:
    """Everything a run depends on. `data_dir` None: the small sets shipped in benchmarks/cyberseceval.
    `guards`: detector specs (see purple.evals.guards) measured by detector benchmarks such as guard_accuracy."""

    models: list[str]
    benchmarks: list[str]
    out: Path
    judge: str | None = None
    limit: int | None = None
    concurrency: int = 8
    data_dir: Path | None = None
    cache_dir: Path | None = None
    timeout_s: float = 120.0
    retries: int = 3
    max_tokens: int = 1024
    temperature: float = 0.0
    resume: bool = False
    progress: bool = True
    guards: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    out: Path
    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def model_id(spec: str) -> str:
    """A model's public identity for records, caches and reports: provider, name and base URL, never a key."""
    parsed = parse_spec(spec)
    if parsed.provider in ("openai", "ollama") and parsed.base_url:
        return f"{parsed.display}@{parsed.base_url}"
    return parsed.display


def guard_id(spec: GuardSpec) -> str:
    """A detector under test's public identity for records and reports; Llama Guard's model as model_id (no key)."""
    return f"llama_guard:{model_id(spec.arg)}" if spec.name == "llama_guard" else spec.text


def dataset_path(benchmark: Benchmark | DetectorBenchmark, root: Path | None) -> Path:
    base = root if root is not None else data_dir("benchmarks") / "cyberseceval"
    return base / benchmark.dataset


def generated_dataset(benchmark: Generated, out: Path) -> Path:
    """A generated benchmark's cases, written into the run folder (the same file again on --resume)."""
    path = out / benchmark.dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(benchmark.generate(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _load(spec: str, config: RunConfig) -> ChatModel:
    provider = parse_spec(spec).provider
    wanted = {"concurrency": config.concurrency, "timeout_s": config.timeout_s, "retries": config.retries}
    return load_model(spec, **{k: v for k, v in wanted.items() if k in OPTIONS[provider]})


class _Judging:
    """The judge context: the judge model and one Code Shield, both built on first use."""

    def __init__(self, judge_model: ChatModel | None) -> None:
        self.judge_model = judge_model

    @cached_property
    def code_shield(self) -> Any:
        from purple.codeshield import CodeShield

        return CodeShield()


def _record(model: str, bench: str, sample: Sample, response: str, error: str | None, cached: bool,
            judged: Judged | None) -> dict[str, Any]:
    return {
        "key": f"{model}\x1f{bench}\x1f{sample.id}",
        "model": model,
        "benchmark": bench,
        "sample_id": sample.id,
        "prompt": [{"role": m.role, "content": m.content} for m in sample.conversation],
        "response": response,
        "error": error or (judged.error if judged else None),
        "cached": cached,
        "scores": judged.scores if judged and not judged.error else {},
        "groups": judged.groups if judged else {},
        "judge_output": judged.judge_output if judged else "",
        "findings": list(judged.findings) if judged else [],
        "columns": judged.columns if judged and not judged.error else {},
    }


def prepare(config: RunConfig) -> tuple[list[Benchmark | DetectorBenchmark], dict[str, list[Sample]], dict[str, Any],
                                       list[str]]:
    """Check everything a user can get wrong before any model loads; return benchmarks, samples, manifest, warnings."""
    benchmarks = [get_benchmark(name) for name in expand(config.benchmarks)]
    if not benchmarks:
        raise EvalError("give at least one --benchmark")
    of_detectors = [b.name for b in benchmarks if isinstance(b, DetectorBenchmark)]
    guards = [parse_guard(spec) for spec in config.guards]
    if of_detectors and not guards:
        raise EvalError(f"{', '.join(of_detectors)} measure(s) a detector: add --guard SPEC")
    if guards and not of_detectors:
        raise EvalError("--guard goes with a detector benchmark (guard_accuracy)")
    if len(of_detectors) < len(benchmarks) and not config.models:
        raise EvalError("give at least one --model")
    if config.models and len(of_detectors) == len(benchmarks):
        raise EvalError(f"{', '.join(of_detectors)} measure(s) --guard detectors, not models: leave out --model")
    ids = [model_id(spec) for spec in config.models]
    warnings: list[str] = []
    needs_judge = [b.name for b in benchmarks if not isinstance(b, DetectorBenchmark) and b.needs_judge_model]
    if needs_judge and not config.judge:
        raise EvalError(f"{', '.join(needs_judge)} need(s) a judge model: add --judge SPEC")
    judge_id = model_id(config.judge) if config.judge else None
    if judge_id and judge_id in ids:
        warnings.append(
            f"THE JUDGE IS THE MODEL UNDER TEST ({judge_id}): it grades its own answers and the scores are "
            "biased; use a different --judge"
        )
    samples: dict[str, list[Sample]] = {}
    datasets: dict[str, dict[str, str]] = {}
    for bench in benchmarks:
        if isinstance(bench, Generated):
            path = generated_dataset(bench, config.out)
        else:
            path = dataset_path(bench, config.data_dir)
        samples[bench.name] = even_stride(bench.load(path), config.limit)
        datasets[bench.name] = {"path": str(path), "sha256": sha256_file(path), "records": str(len(samples[bench.name]))}
    manifest = {
        "models": ids,
        "guards": list(dict.fromkeys(guard_id(g) for g in guards)),
        "judge": judge_id,
        "benchmarks": [b.name for b in benchmarks],
        "datasets": datasets,
        "limit": config.limit,
        "sampling": "even stride" if config.limit else "all",
        "params": asdict(_params(config)),
        "seed": None if config.temperature > 0 else "greedy (temperature 0)",
        "concurrency": config.concurrency,
        "versions": _versions(),
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return benchmarks, samples, manifest, warnings


def _params(config: RunConfig) -> GenerationParams:
    return GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature)


def check_out_dir(config: RunConfig) -> None:
    journal = config.out / JOURNAL
    if journal.exists() and journal.stat().st_size and not config.resume:
        raise EvalError(f"{config.out} already holds a run: add --resume to finish it, or choose another --out")


async def run_async(config: RunConfig, on_warning: Callable[[str], None] = lambda _: None) -> RunResult:
    """Run every model on every model benchmark and every --guard detector on every detector benchmark; records
    already in the journal (a resumed run) are skipped."""
    check_out_dir(config)
    benchmarks, samples, manifest, warnings = prepare(config)
    of_models = [b for b in benchmarks if not isinstance(b, DetectorBenchmark)]
    of_detectors = [b for b in benchmarks if isinstance(b, DetectorBenchmark)]
    guards = {guard_id(g): g for g in map(parse_guard, config.guards)}
    for message in warnings:
        on_warning(message)
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    done = {r["key"] for r in read_records(config.out / JOURNAL)}
    cache = ResponseCache(config.cache_dir) if config.cache_dir else None
    params = _params(config)
    judge_model = _load(config.judge, config) if config.judge else None
    ctx = _Judging(judge_model)
    chunk = max(1, config.concurrency)
    todo = {
        (spec, b.name): [s for s in samples[b.name] if f"{model_id(spec)}\x1f{b.name}\x1f{s.id}" not in done]
        for spec in config.models
        for b in of_models
    }
    guard_todo = {
        (gid, b.name): [s for s in samples[b.name] if f"{gid}\x1f{b.name}\x1f{s.id}" not in done]
        for gid in guards
        for b in of_detectors
    }
    total = sum(len(v) for v in todo.values()) + sum(len(v) for v in guard_todo.values())
    from tqdm import tqdm

    bar = tqdm(total=total, desc="purple eval", unit="case", disable=not config.progress or None, file=sys.stderr)
    try:
        with Journal(config.out / JOURNAL) as journal:
            for spec in config.models:
                if not any(todo[(spec, b.name)] for b in of_models):
                    continue
                mid = model_id(spec)
                model = _load(spec, config)
                try:
                    for bench in of_models:
                        pending = todo[(spec, bench.name)]
                        parts = [pending[start : start + chunk] for start in range(0, len(pending), chunk)]
                        async for records in _stream_chunks(model, mid, bench, parts, params, cache, ctx):
                            journal.append(records)  # journalled as each chunk finishes, in finishing order
                            bar.update(len(records))
                finally:
                    model.close()
            for gid, guard in guards.items():
                pending_of = {b.name: guard_todo[(gid, b.name)] for b in of_detectors}
                if any(pending_of.values()):
                    await _run_guard(guard, gid, of_detectors, pending_of, journal, bar.update)
    finally:
        bar.close()
        if judge_model is not None:
            judge_model.close()
    return RunResult(config.out, read_records(config.out / JOURNAL), warnings)


async def _run_guard(guard: GuardSpec, gid: str, benches: Sequence[DetectorBenchmark],
                     pending_of: dict[str, list[Sample]], journal: Journal, advance: Callable[[int], Any]) -> None:
    """A detector under test on its pending samples: no generation; each chunk goes through check_many once, the
    benchmark grades the verdicts and the chunk is journalled (the verdict is the record's response)."""
    with open_guard(guard) as detector:
        for bench in benches:
            pending = pending_of[bench.name]
            for start in range(0, len(pending), GUARD_CHUNK):
                part = pending[start : start + GUARD_CHUNK]
                verdicts = await detector.acheck_many([list(s.conversation) for s in part])
                judged = bench.grade(part, verdicts)
                journal.append([
                    _record(gid, bench.name, sample, _verdict_text(verdict), None, False, grade)
                    for sample, verdict, grade in zip(part, verdicts, judged, strict=True)
                ])
                advance(len(part))


def _verdict_text(verdict: Verdict) -> str:
    labels = f" {', '.join(verdict.labels)}" if verdict.labels else ""
    return f"{verdict.decision} (score {verdict.score:.4f}){labels}"


async def _stream_chunks(model: ChatModel, mid: str, bench: Benchmark, parts: Sequence[Sequence[Sample]],
                         params: GenerationParams, cache: ResponseCache | None, ctx: _Judging
                         ) -> AsyncIterator[list[dict[str, Any]]]:
    """Run chunks with a few in flight and yield each chunk's records as soon as it is judged."""
    window = asyncio.Semaphore(IN_FLIGHT_CHUNKS)

    async def one(part: Sequence[Sample]) -> list[dict[str, Any]]:
        async with window:
            return await _run_chunk(model, mid, bench, part, params, cache, ctx)

    tasks = [asyncio.ensure_future(one(part)) for part in parts]
    try:
        for finished in asyncio.as_completed(tasks):
            yield await finished
    finally:
        for task in tasks:
            task.cancel()


async def _run_chunk(model: ChatModel, mid: str, bench: Benchmark, part: Sequence[Sample], params: GenerationParams,
                     cache: ResponseCache | None, ctx: _Judging) -> list[dict[str, Any]]:
    if isinstance(bench, MultiTurn):
        return await _run_dialogues(model, mid, bench, part, params, cache, ctx)
    keys = [cache_key(mid, s.conversation, params) for s in part]
    texts: list[str | None] = [cache.get(k) if cache else None for k in keys]
    cached = [t is not None for t in texts]
    errors: list[str | None] = [None] * len(part)
    missing = [i for i, t in enumerate(texts) if t is None]
    if missing:
        completions = await model.agenerate([part[i].conversation for i in missing], params)
        for i, completion in zip(missing, completions):
            texts[i] = completion.text
            errors[i] = completion.error
            if cache and completion.error is None:
                cache.put(keys[i], completion.text)
    ok = [i for i in range(len(part)) if errors[i] is None]
    judged: dict[int, Judged] = {}
    if ok:
        results = await bench.judge([part[i] for i in ok], [texts[i] or "" for i in ok], ctx)
        judged = dict(zip(ok, results))
    return [
        _record(mid, bench.name, sample, texts[i] or "", errors[i], cached[i], judged.get(i))
        for i, sample in enumerate(part)
    ]


def _attacker(model: ChatModel, mid: str, params: GenerationParams, cache: ResponseCache | None) -> Attacker:
    """The model under test as one turn of a dialogue: cached per turn on the conversation so far."""

    async def reply(conversation: Sequence[Message]) -> Reply:
        key = cache_key(mid, conversation, params)
        hit = cache.get(key) if cache else None
        if hit is not None:
            return Reply(hit, cached=True)
        completion = (await model.agenerate([list(conversation)], params))[0]
        if cache and completion.error is None:
            cache.put(key, completion.text)
        return Reply(completion.text, completion.error)

    return reply


async def _run_dialogues(model: ChatModel, mid: str, bench: MultiTurn, part: Sequence[Sample], params: GenerationParams,
                         cache: ResponseCache | None, ctx: _Judging) -> list[dict[str, Any]]:
    """A MultiTurn benchmark's chunk: play every dialogue at once, judge the finished transcripts, and merge the
    scores of how each dialogue ended under the judge's. The transcript is the record's response; a sample is
    journalled only once its whole dialogue and grade are done, so a resumed run replays unfinished ones (their
    attacker turns then come from the cache)."""
    attacker = _attacker(model, mid, params, cache)
    dialogues = await asyncio.gather(*(bench.converse(s, attacker, ctx) for s in part))
    ok = [i for i, d in enumerate(dialogues) if d.error is None]
    judged: dict[int, Judged] = {}
    if ok:
        results = await bench.judge([part[i] for i in ok], [dialogues[i].transcript for i in ok], ctx)
        judged = {i: replace(j, scores={**dialogues[i].scores, **j.scores}) for i, j in zip(ok, results)}
    return [
        _record(mid, bench.name, sample, d.transcript, d.error, d.cached, judged.get(i))
        for i, (sample, d) in enumerate(zip(part, dialogues))
    ]


def run(config: RunConfig, on_warning: Callable[[str], None] = lambda _: None) -> RunResult:
    return asyncio.run(run_async(config, on_warning))


def default_cache_dir() -> Path:
    root = os.environ.get("PURPLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "purple")
    return Path(root) / "responses"
