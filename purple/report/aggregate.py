"""Aggregate judged records (read-only) into statistics with pandas: per benchmark, per model, per category.

Every score in a record is a per-record value whose mean is the metric (a 0/1 flag for a rate, BLEU as is).
Metrics that are not means (precision, AUPRC) are set-level: see SET_METRICS. Records whose generation or
judging failed count as errors and are left out of every metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from purple.report.classification import classification_metrics


SetMetric = Callable[[pd.DataFrame, pd.DataFrame], dict[str, float | None]]
"""compute(group, whole): metrics over a group's records (a category, or all of a model's records), given also
every record of that benchmark and model; both hold successful records only, one `column:NAME` per column."""


def _classification(group: pd.DataFrame, whole: pd.DataFrame) -> dict[str, float | None]:
    """Detector vs gold label. A category with unsafe cases and no safe ones (S1, injection) is measured against
    the safe cases of the whole set, so its precision, FPR and AUPRC mean something; other groups on their own."""
    if len(group) and bool((group["column:label"] == 1).all()):
        group = pd.concat([group, whole[whole["column:label"] == 0]])
    return classification_metrics(group["column:label"].astype(int).tolist(), group["column:score"].tolist(),
                                  group["column:flagged"].astype(int).tolist())


SET_METRICS: tuple[tuple[frozenset[str], SetMetric], ...] = (
    (frozenset({"label", "score", "flagged"}), _classification),
)
"""The set-level hook: (columns read, compute). A benchmark opts in by giving its records those `columns` (see
Judged in evals/benchmark.py); its groups then get compute's metrics, overall and per category, next to the means."""


def _frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for record in records:
        row: dict[str, Any] = {
            "benchmark": record.get("benchmark"),
            "model": record.get("model"),
            "failed": bool(record.get("error")),
        }
        row.update({f"score:{k}": float(v) for k, v in (record.get("scores") or {}).items()})
        row.update({f"group:{k}": str(v) for k, v in (record.get("groups") or {}).items()})
        row.update({f"column:{k}": float(v) for k, v in (record.get("columns") or {}).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["benchmark", "model", "failed"])


def _clean(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, 6)


def _metrics(frame: pd.DataFrame, score_cols: list[str], whole: pd.DataFrame) -> dict[str, float | None]:
    """Means of the scores, then the set-level metrics whose columns `frame` has; `whole` is the model's part."""
    ok = frame[~frame["failed"]]
    metrics = {col.removeprefix("score:"): _clean(ok[col].mean()) for col in score_cols}
    present = {col.removeprefix("column:") for col in frame.columns if col.startswith("column:")}
    for needs, compute in SET_METRICS:
        if needs <= present:
            columns = [f"column:{name}" for name in sorted(needs)]
            found = compute(ok.dropna(subset=columns), whole[~whole["failed"]].dropna(subset=columns))
            metrics.update({k: None if v is None else _clean(v) for k, v in found.items()})
    return metrics


def aggregate(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{benchmark: {model: {count, errors, metrics, categories: {group: [{category, count, metric...}]}}}}."""
    frame = _frame(records)
    stats: dict[str, Any] = {}
    if frame.empty:
        return stats
    for (bench, model), part in frame.groupby(["benchmark", "model"], sort=True):
        part = part.dropna(axis=1, how="all")
        score_cols = sorted(c for c in part.columns if c.startswith("score:"))
        group_cols = sorted(c for c in part.columns if c.startswith("group:"))
        categories: dict[str, list[dict[str, Any]]] = {}
        for col in group_cols:
            rows = []
            for category, sub in part.groupby(col, sort=True):
                rows.append(
                    {"category": str(category), "count": int(len(sub)), "errors": int(sub["failed"].sum()),
                     **_metrics(sub, score_cols, part)}
                )
            categories[col.removeprefix("group:")] = rows
        stats.setdefault(str(bench), {})[str(model)] = {
            "count": int(len(part)),
            "errors": int(part["failed"].sum()),
            "metrics": _metrics(part, score_cols, part),
            "categories": categories,
        }
    return stats


def metric_value(stats: dict[str, Any], bench: str, metric: str, model: str) -> float | None:
    """One metric of one model, or None when it was not measured."""
    entry = stats.get(bench, {}).get(model)
    if entry is None:
        return None
    if metric in ("count", "errors"):
        return float(entry[metric])
    return entry["metrics"].get(metric)


def deltas(stats: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """{bench: {model: {metric: {value, baseline, delta}}}} against the same model in the baseline, or its only one."""
    out: dict[str, Any] = {}
    for bench, models in stats.items():
        base_models = baseline.get(bench, {})
        for model, entry in models.items():
            base = base_models.get(model) or (next(iter(base_models.values())) if len(base_models) == 1 else None)
            if base is None:
                continue
            for metric, value in entry["metrics"].items():
                before = base["metrics"].get(metric)
                if value is None or before is None:
                    continue
                out.setdefault(bench, {}).setdefault(model, {})[metric] = {
                    "value": value, "baseline": before, "delta": round(value - before, 6)
                }
    return out
