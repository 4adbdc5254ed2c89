"""`--fail-on 'bench.metric>x'` thresholds and baseline regressions, checked against aggregated stats."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from purple.report.aggregate import metric_value

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}
_EXPR = re.compile(r"^\s*([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*(-?[0-9]*\.?[0-9]+)\s*$")


class ThresholdError(ValueError):
    """A malformed --fail-on expression."""


@dataclass(frozen=True)
class Threshold:
    """Fail when `benchmark.metric OP value` holds. `text` is the expression as given."""

    benchmark: str
    metric: str
    op: str
    value: float
    text: str

    def breached(self, measured: float) -> bool:
        return _OPS[self.op](measured, self.value)

    @property
    def higher_is_worse(self) -> bool:
        return self.op in (">", ">=")


def parse_threshold(text: str) -> Threshold:
    match = _EXPR.match(text)
    if not match:
        raise ThresholdError(f"bad --fail-on {text!r}: expected BENCHMARK.METRIC OP NUMBER, e.g. instruct.vulnerable_rate>0.2")
    bench, metric, op, value = match.groups()
    return Threshold(bench.replace("-", "_"), metric, op, float(value), text.strip())


@dataclass(frozen=True)
class Check:
    """One pass/fail line of the summary: a threshold or a regression, for one model."""

    name: str
    benchmark: str
    model: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "benchmark": self.benchmark, "model": self.model, "passed": self.passed,
                "detail": self.detail}


def regression(value: float, before: float, higher_is_worse: bool) -> float:
    """How much worse `value` is than `before` (negative when better), rounded against float noise."""
    return round(value - before if higher_is_worse else before - value, 9)


def evaluate(thresholds: Sequence[Threshold], stats: dict[str, Any], baseline: dict[str, Any] | None = None,
             tolerance: float = 0.0) -> list[Check]:
    """Every threshold for every model; with a baseline, also whether each thresholded metric got worse than the
    baseline by more than `tolerance` (absolute; the threshold's operator says which direction is worse)."""
    if tolerance < 0:
        raise ThresholdError(f"the regression tolerance must be at least 0, not {tolerance}")
    checks: list[Check] = []
    for threshold in thresholds:
        models = stats.get(threshold.benchmark, {})
        if not models:
            checks.append(Check(threshold.text, threshold.benchmark, "-", False,
                                f"benchmark {threshold.benchmark} was not run"))
            continue
        for model in models:
            value = metric_value(stats, threshold.benchmark, threshold.metric, model)
            if value is None:
                checks.append(Check(threshold.text, threshold.benchmark, model, False,
                                    f"metric {threshold.metric} was not measured"))
                continue
            failed = threshold.breached(value)
            checks.append(Check(threshold.text, threshold.benchmark, model, not failed,
                                f"{threshold.metric} = {value:.4g} ({'fails' if failed else 'passes'} {threshold.text})"))
            if baseline is None:
                continue
            base_models = baseline.get(threshold.benchmark, {})
            base_model = model if model in base_models else (next(iter(base_models)) if len(base_models) == 1 else None)
            before = metric_value(baseline, threshold.benchmark, threshold.metric, base_model) if base_model else None
            if before is None:
                continue
            worse_by = regression(value, before, threshold.higher_is_worse)
            allowed = f", tolerance {tolerance:.4g}" if tolerance else ""
            change = f"worse by {worse_by:.4g}{allowed}" if worse_by > 0 else "not worse"
            checks.append(Check(f"{threshold.benchmark}.{threshold.metric} vs baseline", threshold.benchmark, model,
                                worse_by <= tolerance, f"{value:.4g} now, {before:.4g} in the baseline ({change})"))
    return checks
