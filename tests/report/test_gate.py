"""The report gate: --fail-on thresholds recorded in the manifest and shown in the HTML summary, and
--regression-tolerance for regressions against a --baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from purple.evals.runner import RunConfig, prepare, shown_path
from purple.report.build import write_reports
from purple.report.thresholds import ThresholdError, evaluate, parse_threshold

MODEL = "canned@http://127.0.0.1:9/v1"


def stats_with(vulnerable_rate: float, f1: float) -> dict[str, Any]:
    return {
        "instruct": {MODEL: {"count": 4, "errors": 0, "metrics": {"vulnerable_rate": vulnerable_rate},
                             "categories": {}}},
        "guard_accuracy": {"regex:x": {"count": 4, "errors": 0, "metrics": {"f1": f1}, "categories": {}}},
    }


def regression_checks(now: dict[str, Any], before: dict[str, Any], tolerance: float) -> list[bool]:
    thresholds = [parse_threshold("instruct.vulnerable_rate>0.9"), parse_threshold("guard_accuracy.f1<0.1")]
    checks = evaluate(thresholds, now, before, tolerance)
    return [c.passed for c in checks if c.name.endswith("vs baseline")]


def test_tolerance_allows_small_regressions_only() -> None:
    before = stats_with(vulnerable_rate=0.50, f1=0.80)
    slightly_worse = stats_with(vulnerable_rate=0.52, f1=0.78)  # worse by 0.02 in each direction
    assert regression_checks(slightly_worse, before, 0.0) == [False, False]
    assert regression_checks(slightly_worse, before, 0.02) == [True, True]  # exactly the tolerance: passes
    assert regression_checks(slightly_worse, before, 0.019) == [False, False]
    much_worse = stats_with(vulnerable_rate=0.60, f1=0.70)
    assert regression_checks(much_worse, before, 0.05) == [False, False]
    better = stats_with(vulnerable_rate=0.40, f1=0.90)
    assert regression_checks(better, before, 0.0) == [True, True]


def test_regression_detail_says_by_how_much() -> None:
    threshold = parse_threshold("instruct.vulnerable_rate>0.9")
    checks = evaluate([threshold], stats_with(0.6, 0.8), stats_with(0.5, 0.8), 0.05)
    assert checks[-1].detail == "0.6 now, 0.5 in the baseline (worse by 0.1, tolerance 0.05)"


def test_negative_tolerance_is_refused() -> None:
    with pytest.raises(ThresholdError):
        evaluate([], stats_with(0.5, 0.5), stats_with(0.5, 0.5), -0.1)


def test_manifest_records_the_gate(tmp_path: Path) -> None:
    config = RunConfig(models=["OPENAI::m::none::http://127.0.0.1:9/v1"], benchmarks=["frr"], out=tmp_path / "run",
                       limit=1, fail_on=["frr.refusal_rate>0.3"], regression_tolerance=0.02)
    manifest = prepare(config)[2]
    assert manifest["fail_on"] == ["frr.refusal_rate>0.3"] and manifest["regression_tolerance"] == 0.02
    assert manifest["datasets"]["frr"]["path"] == "shipped:cyberseceval/mitre_frr/mitre_frr.json"


def test_manifest_paths_name_no_machine_folder(tmp_path: Path) -> None:
    assert shown_path(Path.home() / "sets" / "frr.json") == "~/sets/frr.json"
    elsewhere = tmp_path / "sets" / "frr.json"
    assert shown_path(elsewhere) == str(elsewhere)


def run_folder(path: Path, vulnerable: list[float], manifest: dict[str, Any]) -> Path:
    """A run folder as `purple eval` leaves it: the journal of judged instruct records and the manifest."""
    path.mkdir(parents=True)
    records = [
        {"key": f"{MODEL}\x1finstruct\x1f{i}", "model": MODEL, "benchmark": "instruct", "sample_id": str(i),
         "prompt": [{"role": "user", "content": f"case {i}"}], "response": "", "error": None,
         "scores": {"vulnerable_rate": v}, "groups": {"language": "python"}}
        for i, v in enumerate(vulnerable)
    ]
    (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (path / "manifest.json").write_text(json.dumps({"models": [MODEL], **manifest}), encoding="utf-8")
    return path


def test_html_summary_and_stats_show_the_thresholds(tmp_path: Path) -> None:
    run = run_folder(tmp_path / "run", [1.0, 0.0, 0.0, 0.0], {})
    baseline = run_folder(tmp_path / "base", [0.0, 0.0, 0.0, 0.0], {})
    write_reports(baseline)  # its stats.json is the baseline
    outcome = write_reports(run, [parse_threshold("instruct.vulnerable_rate>0.5")], baseline, 0.3)
    assert not outcome.failed  # 0.25 passes the threshold, and is worse than 0 by no more than 0.3
    summary = json.loads((run / "stats.json").read_text(encoding="utf-8"))
    assert summary["thresholds"] == ["instruct.vulnerable_rate>0.5"] and summary["regression_tolerance"] == 0.3
    html = (run / "report.html").read_text(encoding="utf-8")
    assert '<p id="thresholds">' in html and "<code>instruct.vulnerable_rate&gt;0.5</code>" in html
    assert "by more than 0.3" in html


def purple(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "purple.cli", *args], capture_output=True, text=True, timeout=120)


def test_report_applies_the_run_gate_and_tolerance(tmp_path: Path) -> None:
    gate = {"fail_on": ["instruct.vulnerable_rate>0.5"], "regression_tolerance": 0.3}
    run = run_folder(tmp_path / "run", [1.0, 0.0, 0.0, 0.0], gate)  # 0.25 now
    baseline = run_folder(tmp_path / "base", [0.0, 0.0, 0.0, 0.0], {})  # 0.0 before
    write_reports(baseline)
    done = purple("report", str(run), "--baseline", str(baseline))
    assert done.returncode == 0, done.stdout + done.stderr  # the run's tolerance 0.3 lets 0.25 worse pass
    assert "PASS instruct.vulnerable_rate>0.5" in done.stdout
    assert "PASS instruct.vulnerable_rate vs baseline" in done.stdout
    done = purple("report", str(run), "--baseline", str(baseline), "--regression-tolerance", "0.1")
    assert done.returncode == 1 and "FAIL instruct.vulnerable_rate vs baseline" in done.stdout
    done = purple("report", str(run), "--baseline", str(baseline), "--regression-tolerance", "-1")
    assert done.returncode == 2 and "--regression-tolerance" in done.stderr and "Traceback" not in done.stderr
