"""Write every report of a run folder (stats.json, report.html, junit.xml, findings.sarif) and choose the exit code."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from purple.report.aggregate import aggregate, deltas
from purple.report.eval_sarif import records_to_sarif
from purple.report.html import render_html
from purple.report.junit import to_junit
from purple.report.thresholds import Check, Threshold, evaluate

JOURNAL, MANIFEST, STATS = "records.jsonl", "manifest.json", "stats.json"


class ReportError(Exception):
    """A run folder or baseline that cannot be read: one readable line."""


@dataclass(frozen=True)
class ReportOutcome:
    stats: dict[str, Any]
    checks: list[Check]
    files: list[Path]

    @property
    def failed(self) -> bool:
        return any(not c.passed for c in self.checks)

    @property
    def cases(self) -> int:
        """Records of the run, every benchmark and model."""
        return sum(entry["count"] for models in self.stats.values() for entry in models.values())

    @property
    def errors(self) -> int:
        """Records whose generation or judging failed (left out of every metric)."""
        return sum(entry["errors"] for models in self.stats.values() for entry in models.values())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} not found") from None
    except RecursionError:
        raise ReportError(f"cannot read {path}: its JSON is nested too deeply") from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ReportError(f"{path} is not a JSON object")
    return value


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline is a run folder or its stats.json; returns the stats by benchmark."""
    path = Path(path)
    data = _read_json(path / STATS if path.is_dir() else path)
    stats = data.get("benchmarks")
    if not isinstance(stats, dict):
        raise ReportError(f"{path} holds no eval stats")
    return stats


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class Gate:
    """What a run's manifest says its reports check: the --fail-on expressions, the regression tolerance and the
    share of failed cases allowed (None: not recorded), and the benchmarks it ran (empty: not recorded)."""

    fail_on: list[str]
    regression_tolerance: float | None
    max_error_rate: float | None
    benchmarks: list[str]


def stored_gate(run_dir: str | Path) -> Gate:
    """The gate the run's manifest recorded (a run folder without a manifest: nothing recorded)."""
    path = Path(run_dir) / MANIFEST
    manifest = _read_json(path) if path.exists() else {}
    fail_on = manifest.get("fail_on") or []
    benchmarks = manifest.get("benchmarks") or []
    if not isinstance(fail_on, list) or not all(isinstance(e, str) for e in fail_on):
        raise ReportError(f"{path}: fail_on must be a list of expressions")
    if not isinstance(benchmarks, list) or not all(isinstance(b, str) for b in benchmarks):
        raise ReportError(f"{path}: benchmarks must be a list of names")
    numbers: dict[str, float | None] = {}
    for name, most in (("regression_tolerance", math.inf), ("max_error_rate", 1.0)):
        value = manifest.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= most):
            raise ReportError(f"{path}: {name} must be a number of at least 0"
                              + ("" if most == math.inf else f" and at most {most:g}"))
        numbers[name] = None if value is None else float(value)
    return Gate(fail_on, numbers["regression_tolerance"], numbers["max_error_rate"], benchmarks)


def write_reports(run_dir: str | Path, thresholds: Sequence[Threshold] = (), baseline: str | Path | None = None,
                  tolerance: float = 0.0) -> ReportOutcome:
    """`tolerance`: how much worse than the baseline a thresholded metric may get before its check fails."""
    from purple.evals.journal import read_records

    run_dir = Path(run_dir)
    if not (run_dir / JOURNAL).exists():
        raise ReportError(f"{run_dir} is not an eval run folder (no {JOURNAL})")
    records = read_records(run_dir / JOURNAL)
    manifest = _read_json(run_dir / MANIFEST) if (run_dir / MANIFEST).exists() else {}
    stats = aggregate(records)
    base = load_baseline(baseline) if baseline else None
    checks = evaluate(thresholds, stats, base, tolerance)
    delta = deltas(stats, base) if base is not None else None
    summary = {
        "passed": all(c.passed for c in checks),
        "thresholds": [t.text for t in thresholds],
        "regression_tolerance": tolerance,
        "checks": [c.to_dict() for c in checks],
        "benchmarks": stats,
        "deltas": delta,
        "baseline": str(baseline) if baseline else None,
        "manifest": manifest,
    }
    files = [
        _write(run_dir / STATS, json.dumps(summary, indent=2, ensure_ascii=False) + "\n"),
        _write(run_dir / "junit.xml", to_junit(stats, checks)),
        _write(run_dir / "findings.sarif", json.dumps(records_to_sarif(records), indent=2, ensure_ascii=False) + "\n"),
        _write(run_dir / "report.html", render_html(stats, records, manifest, checks, delta,
                                                   [t.text for t in thresholds], tolerance)),
    ]
    return ReportOutcome(stats, checks, files)
