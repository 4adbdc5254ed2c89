"""The benchmark registry: an explicit dict from name to benchmark. Add a benchmark by adding a line here."""

from __future__ import annotations

from purple.evals.autocomplete import Autocomplete
from purple.evals.benchmark import Benchmark, EvalError
from purple.evals.frr import FalseRefusal
from purple.evals.instruct import Instruct
from purple.evals.interpreter import Interpreter
from purple.evals.prompt_injection import PromptInjection

BENCHMARKS: dict[str, Benchmark] = {
    "instruct": Instruct(),
    "autocomplete": Autocomplete(),
    "frr": FalseRefusal(),
    "prompt_injection": PromptInjection(),
    "interpreter": Interpreter(),
}


def get_benchmark(name: str) -> Benchmark:
    key = name.strip().replace("-", "_")
    if key not in BENCHMARKS:
        raise EvalError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]
