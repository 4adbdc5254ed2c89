"""The benchmark registry: an explicit dict from name to benchmark, and named presets of benchmarks.

Add a benchmark by adding a line here."""

from __future__ import annotations

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


def get_benchmark(name: str) -> Benchmark | DetectorBenchmark:
    key = name.strip().replace("-", "_")
    if key not in BENCHMARKS:
        raise EvalError(f"unknown benchmark {name!r}; known: {', '.join([*BENCHMARKS, *PRESETS])}")
    return BENCHMARKS[key]
