"""The benchmark registry: an explicit dict from name to benchmark, and named presets of benchmarks.

Add a benchmark by adding a line here."""

from __future__ import annotations

from collections.abc import Sequence

from purple.evals.autocomplete import Autocomplete
from purple.evals.benchmark import Benchmark, DetectorBenchmark, EvalError
from purple.evals.canary_exploit import CanaryExploit
from purple.evals.frr import FalseRefusal
from purple.evals.guard_accuracy import GuardAccuracy
from purple.evals.instruct import Instruct
from purple.evals.interpreter import Interpreter
from purple.evals.mitre import Mitre
from purple.evals.multiturn_phishing import MultiturnPhishing
from purple.evals.prompt_injection import PromptInjection
from purple.evals.safety import Safety

BENCHMARKS: dict[str, Benchmark | DetectorBenchmark] = {
    "instruct": Instruct(),
    "autocomplete": Autocomplete(),
    "frr": FalseRefusal(),
    "prompt_injection": PromptInjection(),
    "interpreter": Interpreter(),
    "mitre": Mitre(),
    "canary_exploit": CanaryExploit(),
    "safety": Safety(),
    "guard_accuracy": GuardAccuracy(),
    "multiturn_phishing": MultiturnPhishing(),
}

PRESETS: dict[str, tuple[str, ...]] = {
    "release": ("safety", "frr", "prompt_injection", "interpreter", "instruct"),
}
"""A preset name given to --benchmark stands for these benchmarks."""


def expand(names: list[str]) -> list[str]:
    """Benchmark names with presets expanded, in order, each name once."""
    out: list[str] = []
    for name in names:
        key = name.strip().replace("-", "_")
        for item in PRESETS.get(key, (name,)):
            if item not in out:
                out.append(item)
    return out


RUN_METRICS = ("count", "errors")
"""Metrics every benchmark has: its cases, and those that failed."""


def check_thresholds(expressions: Sequence[str], benchmarks: Sequence[str]) -> None:
    """Refuse a --fail-on expression that names a benchmark not in `benchmarks` or a metric that benchmark does not
    measure (a typo would otherwise be found only after the run, as a failed check)."""
    from purple.report.thresholds import ThresholdError, parse_threshold

    for expression in expressions:
        try:
            threshold = parse_threshold(expression)
        except ThresholdError as exc:
            raise EvalError(str(exc)) from None
        if threshold.benchmark not in benchmarks:
            raise EvalError(f"bad --fail-on {threshold.text!r}: {threshold.benchmark} is not among the benchmarks "
                            f"of this run ({', '.join(benchmarks) or 'none'})")
        known = (*get_benchmark(threshold.benchmark).metrics, *RUN_METRICS)
        if threshold.metric not in known:
            raise EvalError(f"bad --fail-on {threshold.text!r}: {threshold.benchmark} has no metric "
                            f"{threshold.metric!r}; it has {', '.join(known)}")


def get_benchmark(name: str) -> Benchmark | DetectorBenchmark:
    key = name.strip().replace("-", "_")
    if key not in BENCHMARKS:
        raise EvalError(f"unknown benchmark {name!r}; known: {', '.join([*BENCHMARKS, *PRESETS])}")
    return BENCHMARKS[key]
