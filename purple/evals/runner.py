"""The runner: every model against every benchmark, concurrently, cached, journalled and resumable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from purple.evals.benchmark import (
    Attacker,
    BatchJudged,
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
from purple.evals.registry import check_thresholds, expand, get_benchmark
from purple.models.base import ChatModel, GenerationParams
from purple.models.loader import OPTIONS, load_model
from purple.models.secrets import public_url
from purple.models.spec import parse_spec
from purple.resources import data_dir, shown_path
from purple.types import Message, Verdict

JOURNAL = "records.jsonl"
MANIFEST = "manifest.json"
IN_FLIGHT_CHUNKS = 4
"""Chunks of `concurrency` cases being generated at once, so the backend always has the next requests queued."""
GUARD_CHUNK = 64
"""Conversations per check_many call of a detector under test (--guard); each chunk is one journal write."""
PACKAGES = ("purple", "torch", "transformers", "onnxruntime", "httpx", "pandas", "jinja2", "semgrep")


@dataclass
class RunConfig:
    """Everything a run depends on. `data_dir` None: the small sets shipped in benchmarks/cyberseceval.
    `guards`: detector specs (see purple.evals.guards) measured by detector benchmarks such as guard_accuracy.
    `fail_on`, `regression_tolerance` and `max_error_rate`: the gate the reports check (--fail-on,
    --regression-tolerance, --max-error-rate), recorded in the manifest so that `purple report` applies the same one."""

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
    fail_on: list[str] = field(default_factory=list)
    regression_tolerance: float = 0.0
    max_error_rate: float = 0.0


@dataclass
class RunResult:
    out: Path
    records: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def model_id(spec: str) -> str:
    """A model's public identity for records, caches and reports: provider, name and base URL, never a key
    (nor the URL's credentials)."""
    parsed = parse_spec(spec)
    if parsed.provider in ("openai", "ollama") and parsed.base_url:
        return f"{parsed.display}@{public_url(parsed.base_url)}"
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
    check_thresholds(config.fail_on, [b.name for b in benchmarks])
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
    stored = stored_manifest(config.out) if config.resume else None
    if stored is not None:
        check_resumed(config.out, stored, {
            "models": ids, "guards": [guard_id(g) for g in guards], "judge": judge_id,
            "benchmarks": [b.name for b in benchmarks], "limit": config.limit,
            "params": asdict(_params(config)),
        })
    samples: dict[str, list[Sample]] = {}
    datasets: dict[str, dict[str, str]] = {}
    for bench in benchmarks:
        if isinstance(bench, Generated):
            path = generated_dataset(bench, config.out)
        else:
            path = dataset_path(bench, config.data_dir)
        samples[bench.name] = even_stride(bench.load(path), config.limit)
        datasets[bench.name] = {"path": shown_path(path), "sha256": sha256_file(path), "records": str(len(samples[bench.name]))}
    if stored is not None:
        check_resumed_datasets(config.out, stored, datasets)
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
        "fail_on": list(config.fail_on),
        "regression_tolerance": config.regression_tolerance,
        "max_error_rate": config.max_error_rate,
        "versions": _versions(),
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return benchmarks, samples, manifest, warnings


def _params(config: RunConfig) -> GenerationParams:
    return GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature)


def check_out_dir(config: RunConfig) -> None:
    """A run folder is only added to with --resume, and --resume needs a run (its manifest) to finish."""
    journal = config.out / JOURNAL
    has_records = journal.exists() and journal.stat().st_size > 0
    if has_records and not config.resume:
        raise EvalError(f"{config.out} already holds a run: add --resume to finish it, or choose another --out")
    if config.resume and not (config.out / MANIFEST).exists():
        if has_records:
            raise EvalError(f"--resume: {config.out} has records but no {MANIFEST}, so this command cannot "
                            "be checked against the run that wrote them")
        raise EvalError(f"--resume: {config.out} holds no run to finish (no {MANIFEST}); leave out --resume "
                        "to start one")


def stored_manifest(out: Path) -> dict[str, Any]:
    """The manifest of the run a --resume finishes."""
    path = out / MANIFEST
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise EvalError(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise EvalError(f"--resume: {path} is not a JSON object")
    return value


RESUME_SETTINGS = {"models": "--model", "guards": "--guard", "judge": "--judge", "benchmarks": "--benchmark",
                   "limit": "--limit", "params": "generation settings"}
"""The manifest fields that define a run's cases and how they are answered and judged: --resume keeps them."""


def check_resumed(out: Path, stored: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse to --resume a run with settings (RESUME_SETTINGS) other than its manifest's: its records and the
    new ones would be mixed in one report. Models, guards and benchmarks may come in another order."""
    for name, flag in RESUME_SETTINGS.items():
        old, new = stored.get(name), json.loads(json.dumps(settings[name]))
        if name == "params" and isinstance(old, dict):
            changed = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
            old, new = ({k: side.get(k) for k in changed} for side in (old, new))
            same = not changed
        elif isinstance(old, list) and isinstance(new, list):
            same = sorted(map(str, old)) == sorted(map(str, new))
        else:
            same = old == new
        if not same:
            raise EvalError(f"--resume: {out} was run with {flag} {_shown(old)}, not {_shown(new)}: resume "
                            "it with the same settings, or choose another --out")


def check_resumed_datasets(out: Path, stored: dict[str, Any], datasets: dict[str, dict[str, str]]) -> None:
    """Refuse to --resume a run whose datasets (hashed in its manifest) have changed: other cases."""
    old_sets = stored.get("datasets")
    for name, new in datasets.items():
        old = old_sets.get(name) if isinstance(old_sets, dict) else None
        if isinstance(old, dict) and old.get("sha256") == new["sha256"]:
            continue
        was = f"{old.get('path')} (sha256 {str(old.get('sha256'))[:12]})" if isinstance(old, dict) else "none"
        raise EvalError(f"--resume: the {name} dataset differs from the one {out} was run with: it was "
                        f"{was}, now {new['path']} (sha256 {new['sha256'][:12]})")


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


async def run_async(config: RunConfig, on_warning: Callable[[str], None] = lambda _: None) -> RunResult:
    """Run every model on every model benchmark and every --guard detector on every detector benchmark; cases
    already in the journal (a resumed run) are skipped unless their latest record is an error: those run
    again, and the new record supersedes the old (read_records keeps the last record of each key)."""
    check_out_dir(config)
    fresh = not config.out.exists()
    try:
        benchmarks, samples, manifest, warnings = prepare(config)
    except BaseException:
        if fresh:  # a generated benchmark may have written its cases; a refused run leaves no folder behind
            shutil.rmtree(config.out, ignore_errors=True)
        raise
    of_models = [b for b in benchmarks if not isinstance(b, DetectorBenchmark)]
    of_detectors = [b for b in benchmarks if isinstance(b, DetectorBenchmark)]
    guards = {guard_id(g): g for g in map(parse_guard, config.guards)}
    for message in warnings:
        on_warning(message)
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    done = {r["key"] for r in read_records(config.out / JOURNAL) if not r.get("error")}
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
            progress = _Progress(bar, journal)
            for spec in config.models:
                if not any(todo[(spec, b.name)] for b in of_models):
                    continue
                mid = model_id(spec)
                model = _load(spec, config)
                try:
                    for bench in of_models:
                        await _run_benchmark(model, mid, bench, todo[(spec, bench.name)], chunk, params, cache, ctx,
                                             progress)
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


@dataclass(frozen=True)
class _Answer:
    """One case generated and not yet judged: the response (for a MultiTurn benchmark the transcript, with `scores`
    of how the dialogue ended), or the error that stopped it, and whether it came from the response cache."""

    sample: Sample
    response: str
    error: str | None
    cached: bool
    scores: dict[str, float] = field(default_factory=dict)


class _Progress:
    """Where the models' records go: the bar counts cases as they are generated (the slow part) and shows how many
    are journalled; a record is journalled once judged (or at once, with its error, when generation failed)."""

    def __init__(self, bar: Any, journal: Journal) -> None:
        self.bar = bar
        self.journal = journal
        self.journalled = 0

    def generated(self, count: int) -> None:
        self.bar.update(count)

    def judged(self, records: list[dict[str, Any]]) -> None:
        self.journal.append(records)
        self.journalled += len(records)
        self.bar.set_postfix_str(f"{self.journalled} journalled", refresh=False)


def judge_batch(bench: Benchmark, chunk: int) -> int:
    """Cases per judge() call: a BatchJudged benchmark's judge_batch, else one chunk of --concurrency cases."""
    return max(1, bench.judge_batch) if isinstance(bench, BatchJudged) else chunk


async def _run_benchmark(model: ChatModel, mid: str, bench: Benchmark, pending: Sequence[Sample], chunk: int,
                         params: GenerationParams, cache: ResponseCache | None, ctx: _Judging,
                         progress: _Progress) -> None:
    """Generate `pending` in chunks of `chunk` cases, IN_FLIGHT_CHUNKS at once, and judge the answers in batches of
    judge_batch(bench, chunk) as they accumulate (the rest when generation ends); each judged batch is journalled
    at once, in finishing order. A failed generation is journalled with its error as soon as it comes back.

    Judging runs beside generation: at most max(1, IN_FLIGHT_CHUNKS * chunk // batch) judge() calls at once (one
    Code Shield batch; IN_FLIGHT_CHUNKS calls of one chunk for an LLM judge), and no new chunk starts while a whole
    batch waits for a judge, so the answers not yet journalled are those calls' batches plus fewer than
    batch + IN_FLIGHT_CHUNKS * chunk waiting (instruct at --concurrency 8: 256 being judged, under 288 waiting).
    A killed run loses only their judging: each answer is in the response cache before it is buffered, so --resume
    judges them again without asking the model (with --no-cache they are generated again)."""
    batch = judge_batch(bench, chunk)
    judges_at_once = max(1, IN_FLIGHT_CHUNKS * chunk // batch)
    parts = deque(pending[start : start + chunk] for start in range(0, len(pending), chunk))
    unjudged: list[_Answer] = []
    generating: set[asyncio.Task[list[_Answer]]] = set()
    judging: set[asyncio.Task[list[dict[str, Any]]]] = set()
    try:
        while parts or generating or judging or unjudged:
            last = not parts and not generating
            while unjudged and len(judging) < judges_at_once and (len(unjudged) >= batch or last):
                judging.add(asyncio.ensure_future(_judge(mid, bench, unjudged[:batch], ctx)))
                del unjudged[:batch]
            while parts and len(generating) < IN_FLIGHT_CHUNKS and len(unjudged) < batch:
                generating.add(asyncio.ensure_future(_generate(model, mid, bench, parts.popleft(), params, cache, ctx)))
            finished, _ = await asyncio.wait({*generating, *judging}, return_when=asyncio.FIRST_COMPLETED)
            for judged in judging & finished:
                judging.discard(judged)
                progress.judged(judged.result())
            for generated in generating & finished:
                generating.discard(generated)
                answers = generated.result()
                failed = [a for a in answers if a.error is not None]
                unjudged.extend(a for a in answers if a.error is None)
                progress.generated(len(answers))
                if failed:
                    progress.judged([_record(mid, bench.name, a.sample, a.response, a.error, a.cached, None)
                                     for a in failed])
    finally:
        unfinished = [*generating, *judging]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)


async def _generate(model: ChatModel, mid: str, bench: Benchmark, part: Sequence[Sample], params: GenerationParams,
                    cache: ResponseCache | None, ctx: _Judging) -> list[_Answer]:
    """One chunk's answers, from the response cache where it has them; new ones are cached before they return."""
    if isinstance(bench, MultiTurn):
        return await _play_dialogues(model, mid, bench, part, params, cache, ctx)
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
    return [_Answer(sample, texts[i] or "", errors[i], cached[i]) for i, sample in enumerate(part)]


async def _judge(mid: str, bench: Benchmark, answers: Sequence[_Answer], ctx: _Judging) -> list[dict[str, Any]]:
    """One judge() call over generated answers, and their records; a dialogue's own scores go under the judge's."""
    results = await bench.judge([a.sample for a in answers], [a.response for a in answers], ctx)
    return [
        _record(mid, bench.name, a.sample, a.response, None, a.cached, replace(j, scores={**a.scores, **j.scores}))
        for a, j in zip(answers, results, strict=True)
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


async def _play_dialogues(model: ChatModel, mid: str, bench: MultiTurn, part: Sequence[Sample],
                          params: GenerationParams, cache: ResponseCache | None, ctx: _Judging) -> list[_Answer]:
    """A MultiTurn benchmark's chunk: play every dialogue at once; the transcript is the answer the judge grades.
    A sample is journalled only once its whole dialogue and grade are done, so a resumed run replays unfinished
    ones (their attacker turns then come from the cache)."""
    attacker = _attacker(model, mid, params, cache)
    dialogues = await asyncio.gather(*(bench.converse(s, attacker, ctx) for s in part))
    return [_Answer(sample, d.transcript, d.error, d.cached, d.scores) for sample, d in zip(part, dialogues)]


def run(config: RunConfig, on_warning: Callable[[str], None] = lambda _: None) -> RunResult:
    return asyncio.run(run_async(config, on_warning))


def default_cache_dir() -> Path:
    root = os.environ.get("PURPLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "purple")
    return Path(root) / "responses"
