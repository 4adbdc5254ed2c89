"""The CyberSecEval-style harness: benchmarks (dataset -> conversations -> judge -> metrics), the runner, judges."""

from purple.evals.benchmark import Benchmark, EvalError, Sample
from purple.evals.registry import BENCHMARKS, get_benchmark

__all__ = ["BENCHMARKS", "Benchmark", "EvalError", "Sample", "get_benchmark"]
