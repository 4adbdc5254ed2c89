"""Aggregate judged records (read-only) into statistics with pandas: per benchmark, per model, per category.

Every score in a record is a per-record value whose mean is the metric (a 0/1 flag for a rate, BLEU as is).
Records whose generation or judging failed count as errors and are left out of the means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd


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
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["benchmark", "model", "failed"])


def _clean(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, 6)


def _metrics(frame: pd.DataFrame, score_cols: list[str]) -> dict[str, float | None]:
    ok = frame[~frame["failed"]]
    return {col.removeprefix("score:"): _clean(ok[col].mean()) for col in score_cols}


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
                     **_metrics(sub, score_cols)}
                )
            categories[col.removeprefix("group:")] = rows
        stats.setdefault(str(bench), {})[str(model)] = {
            "count": int(len(part)),
            "errors": int(part["failed"].sum()),
            "metrics": _metrics(part, score_cols),
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
