"""Set-level metrics in the report: computed over whole groups from record columns, then gated, compared, rendered."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from purple.report.aggregate import aggregate, deltas
from purple.report.html import render_html
from purple.report.junit import to_junit
from purple.report.thresholds import evaluate, parse_threshold

BENCH, MODEL = "guard_accuracy", "regex:x"


def record(n: int, category: str, label: int, score: float, flagged: int, error: str | None = None) -> dict[str, Any]:
    return {
        "key": f"{MODEL}\x1f{BENCH}\x1f{n}", "benchmark": BENCH, "model": MODEL, "sample_id": str(n),
        "prompt": [{"role": "user", "content": f"case {n}"}], "response": "", "error": error,
        "scores": {} if error else {"misclassification_rate": float(label != flagged)},
        "groups": {"category": category},
        "columns": {} if error else {"label": float(label), "score": score, "flagged": float(flagged)},
    }


RECORDS = [
    record(1, "S1", 1, 0.9, 1),
    record(2, "S1", 1, 0.4, 0),
    record(3, "mixed", 1, 0.8, 1),
    record(4, "mixed", 0, 0.6, 1),
    record(5, "benign", 0, 0.1, 0),
    record(6, "benign", 0, 0.3, 0),
    record(7, "benign", 0, 0.0, 0, error="detector: timed out"),  # left out of every metric
    {"key": "m\x1ffrr\x1f1", "benchmark": "frr", "model": "m", "scores": {"refusal_rate": 1.0}, "groups": {}},
]


@pytest.fixture(scope="module")
def stats() -> dict[str, Any]:
    return aggregate(RECORDS)


def test_overall_metrics_are_computed_over_the_whole_set(stats: dict[str, Any]) -> None:
    entry = stats[BENCH][MODEL]
    assert entry["count"] == 7 and entry["errors"] == 1
    m = entry["metrics"]  # 6 good cases: TP 2, FN 1, FP 1, TN 2
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-6) and m["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["f1"] == pytest.approx(2 / 3, abs=1e-6) and m["fpr"] == pytest.approx(1 / 3, abs=1e-6)
    # scores high to low: .9 (+) .8 (+) .6 (-) .4 (+) .3 .1 -> recall 1/3, 2/3 at precision 1, then 1 at 3/4
    assert m["auprc"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 3 / 4, abs=1e-6)
    assert m["roc_auc"] == pytest.approx(8 / 9, abs=1e-6)
    assert m["misclassification_rate"] == pytest.approx(2 / 6, abs=1e-6)  # the per-record mean stays a mean
    assert set(stats["frr"]["m"]["metrics"]) == {"refusal_rate"}  # no columns, no set-level metrics


def test_categories(stats: dict[str, Any]) -> None:
    rows = {r["category"]: r for r in stats[BENCH][MODEL]["categories"]["category"]}
    assert set(rows["S1"]) == set(rows["benign"]) == set(rows["mixed"])  # one table, the same columns
    s1 = rows["S1"]  # unsafe only: measured against the three good safe cases of the set (.6 flagged, .1, .3)
    assert s1["count"] == 2
    assert (s1["precision"], s1["recall"], s1["f1"]) == (0.5, 0.5, 0.5)
    assert s1["fpr"] == pytest.approx(1 / 3, abs=1e-6)
    assert s1["auprc"] == pytest.approx(1 / 2 + 1 / 2 * 2 / 3, abs=1e-6) and s1["roc_auc"] == pytest.approx(5 / 6, abs=1e-6)
    mixed = rows["mixed"]  # both labels: on its own
    assert (mixed["precision"], mixed["recall"], mixed["fpr"], mixed["auprc"]) == (0.5, 1.0, 1.0, 1.0)
    benign = rows["benign"]  # safe only: its own false positive rate; the failed case is an error
    assert benign["count"] == 3 and benign["errors"] == 1 and benign["fpr"] == 0.0
    assert benign["recall"] is None and benign["precision"] is None and benign["auprc"] is None


def test_thresholds_baseline_junit_and_html(stats: dict[str, Any]) -> None:
    checks = evaluate([parse_threshold("guard_accuracy.f1<0.8")], stats)
    assert [c.passed for c in checks] == [False] and "f1 = 0.6667" in checks[0].detail
    baseline = copy.deepcopy(stats)
    baseline[BENCH][MODEL]["metrics"]["f1"] = 0.9
    gated = evaluate([parse_threshold("guard_accuracy.f1<0.5")], stats, baseline)
    assert [c.passed for c in gated] == [True, False]  # passes the gate, but F1 fell below the baseline's
    delta = deltas(stats, baseline)[BENCH][MODEL]
    assert delta["f1"]["delta"] == pytest.approx(2 / 3 - 0.9, abs=1e-6) and delta["auprc"]["delta"] == 0
    suites = ET.fromstring(to_junit(stats, gated))
    s1 = suites.find(f"testsuite[@name='{BENCH}']/testcase[@name='category=S1 [{MODEL}]']")
    assert s1 is not None and "f1=0.5" in (s1.findtext("system-out") or "")
    html = render_html(stats, RECORDS, {"models": [], "guards": [MODEL]}, gated, deltas(stats, baseline))
    assert "<th>roc_auc</th>" in html and "n/a" in html and "<code>regex:x</code>" in html
    assert "auprc by category" in html


def test_junit_stays_well_formed_with_control_characters_in_names() -> None:
    hostile = [record(1, "S\x01\x1b[2J", 1, 0.9, 1), record(2, "S\x01\x1b[2J", 0, 0.1, 0)]
    stats = aggregate(hostile)
    suites = ET.fromstring(to_junit(stats, evaluate([parse_threshold("guard_accuracy.f1<0.8")], stats)))
    names = [case.get("name") for case in suites.iter("testcase")]
    assert "category=S\\x01\\x1b[2J [regex:x]" in names
