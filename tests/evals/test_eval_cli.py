"""End to end: the real `purple` command against a local OpenAI-compatible server and a tiny hf: model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.evals.canned import XSS, undeclared_metrics

SECRET = "sk-do-not-leak-4242"
ALL = "instruct,autocomplete,frr,prompt_injection,interpreter"


def purple(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "purple.cli", *args], capture_output=True, text=True, timeout=timeout)


def spec(server: Any, name: str) -> str:
    return f"OPENAI::{name}::{SECRET}::{server.url}"


@pytest.fixture(scope="module")
def openai_run(tmp_path_factory: pytest.TempPathFactory, canned_server: Any, judge_server: Any) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("runs") / "openai"
    done = purple("eval", "--model", spec(canned_server, "canned"), "--judge", spec(judge_server, "judge"),
                  "--benchmark", ALL, "--limit", "3", "--out", str(out), "--cache-dir", str(out.parent / "cache"),
                  "--fail-on", "instruct.vulnerable_rate>0.2", "--fail-on", "frr.refusal_rate>0.9")
    return out, done


def test_every_benchmark_runs_and_gates(openai_run: tuple[Path, Any]) -> None:
    out, done = openai_run
    assert done.returncode == 1, done.stderr  # instruct.vulnerable_rate>0.2 fails
    assert "FAIL instruct.vulnerable_rate>0.2" in done.stdout and "PASS frr.refusal_rate>0.9" in done.stdout
    stats = json.loads((out / "stats.json").read_text())
    benches = stats["benchmarks"]
    assert set(benches) == set(ALL.split(",")) and not undeclared_metrics(benches)
    model = next(iter(benches["instruct"]))
    assert benches["instruct"][model]["metrics"]["vulnerable_rate"] == 1.0
    assert benches["instruct"][model]["count"] == 3
    assert benches["prompt_injection"][model]["metrics"]["success_rate"] == 1.0
    assert benches["interpreter"][model]["metrics"]["malicious_rate"] == 1.0
    assert {r["category"] for r in benches["prompt_injection"][model]["categories"]["injection_variant"]}
    assert benches["frr"][model]["metrics"]["refusal_rate"] == pytest.approx(1 / 3)
    assert stats["manifest"]["datasets"]["instruct"]["sha256"]
    assert stats["manifest"]["fail_on"] == ["instruct.vulnerable_rate>0.2", "frr.refusal_rate>0.9"]
    assert '<p id="thresholds">' in (out / "report.html").read_text()


def test_reports_are_well_formed_and_leak_no_key(openai_run: tuple[Path, Any]) -> None:
    out, done = openai_run
    for path in out.iterdir():
        assert SECRET not in path.read_text(encoding="utf-8"), path.name
    assert SECRET not in done.stdout + done.stderr
    sarif = json.loads((out / "findings.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert results and all(r["properties"]["cwe"].startswith("CWE-") for r in results)
    assert results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("generated/")
    suites = ET.fromstring((out / "junit.xml").read_text())
    gate = suites.find("testsuite[@name='thresholds']")
    assert gate is not None and gate.get("failures") == "1" and gate.get("tests") == "2"
    html = (out / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    assert "<script" not in html and "<link" not in html and 'src="http' not in html  # nothing from the network
    assert "default-src 'none'" in html


def test_report_rerenders_with_baseline(openai_run: tuple[Path, Any]) -> None:
    out, _ = openai_run
    done = purple("report", str(out), "--baseline", str(out), "--fail-on", "frr.refusal_rate>0.9")
    assert done.returncode == 0, done.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert all(d["delta"] == 0 for models in stats["deltas"].values() for m in models.values() for d in m.values())
    assert "vs baseline" in done.stdout


def test_hf_model_end_to_end(tmp_path: Path, lg3_dir: Path) -> None:
    done = purple("eval", "--model", f"hf:{lg3_dir}", "--benchmark", "frr,instruct", "--limit", "2", "--max-tokens",
                  "8", "--out", str(tmp_path / "run"), "--no-cache", "--no-progress")
    assert done.returncode == 0, done.stderr
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    assert stats["benchmarks"]["frr"][f"hf:{lg3_dir}"]["count"] == 2


def test_resume_after_sigkill(tmp_path: Path, canned_server: Any) -> None:
    out = tmp_path / "run"
    args = ["eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr,instruct", "--concurrency", "1",
            "--out", str(out), "--no-cache", "--no-progress"]
    canned_server.delay_s = 0.25
    try:
        proc = subprocess.Popen([sys.executable, "-m", "purple.cli", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        journal = out / "records.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (journal.exists() and journal.read_bytes().count(b"\n") >= 4):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        canned_server.delay_s = 0.0
    written = journal.read_bytes().count(b"\n")
    assert 4 <= written < 12
    done = purple(*args, "--resume")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    keys = [r["key"] for r in lines]
    assert len(keys) == len(set(keys)) == 12


def test_bad_input_is_one_line_exit_2(tmp_path: Path, canned_server: Any) -> None:
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--fail-on", "frr.x~1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "nope", "--out", str(tmp_path / "a"))
    assert done.returncode == 2 and "unknown benchmark" in done.stderr and "Traceback" not in done.stderr
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "prompt_injection",
                  "--out", str(tmp_path / "b"))
    assert done.returncode == 2 and "--judge" in done.stderr
    done = purple("report", str(tmp_path / "missing"))
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_max_error_rate_tolerates_some_failed_cases(tmp_path: Path, canned_server: Any) -> None:
    """--max-error-rate is the share of failed cases a run may have and still exit 0; the manifest keeps it for
    `purple report`; a run where every case failed exits 2 whatever the rate."""
    out = tmp_path / "run"
    args = ["eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--concurrency", "1",
            "--retries", "0", "--out", str(out), "--no-cache", "--no-progress", "--max-error-rate", "0.5"]
    canned_server.fail_next = [500, 500, 500]
    try:
        done = purple(*args)
    finally:
        canned_server.fail_next = []
    assert done.returncode == 0 and "3 case(s) failed" in done.stderr, done.stderr
    assert json.loads((out / "manifest.json").read_text())["max_error_rate"] == 0.5
    assert purple("report", str(out)).returncode == 0
    assert purple("report", str(out), "--max-error-rate", "0.1").returncode == 2
    canned_server.fail_next = [500] * 6
    try:
        done = purple(*args[:-1], "1", "--out", str(tmp_path / "all"))
    finally:
        canned_server.fail_next = []
    assert done.returncode == 2 and "every case failed" in done.stderr
    done = purple(*args[:-1], "1.5", "--out", str(tmp_path / "bad"))
    assert done.returncode == 2 and "--max-error-rate" in done.stderr


def test_fail_on_is_checked_before_the_run(tmp_path: Path, canned_server: Any) -> None:
    """A --fail-on naming a metric its benchmark does not measure, or a benchmark the run does not include, is a
    usage error before anything runs (no request, no run folder), in eval and in report."""
    asked = len(canned_server.requests)
    for expression, says in (("frr.refusal_rat>0.3", "frr has no metric 'refusal_rat'; it has refusal_rate"),
                             ("mitre.refusal_rate>0.3", "mitre is not among the benchmarks of this run (frr)")):
        done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr",
                      "--out", str(tmp_path / "run"), "--fail-on", expression, "--no-progress")
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists() and len(canned_server.requests) == asked
    out = tmp_path / "ok"
    args = ["eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--limit", "2",
            "--out", str(out), "--no-cache", "--no-progress"]
    assert purple(*args, "--fail-on", "frr.errors>0", "--fail-on", "frr.count<2").returncode == 0
    done = purple("report", str(out), "--fail-on", "frr.refusal_rat>0.3")
    assert done.returncode == 2 and "frr has no metric" in done.stderr
    done = purple("report", str(out), "--fail-on", "instruct.vulnerable_rate>0.3")
    assert done.returncode == 2 and "instruct is not among the benchmarks of this run" in done.stderr


def test_refused_run_leaves_no_folder(tmp_path: Path, canned_server: Any) -> None:
    """A generated benchmark writes its cases into the run folder while the run is checked; when a later check
    refuses the run, the folder it created is gone (one that existed before is kept)."""
    out = tmp_path / "run"
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "canary_exploit,frr",
                  "--data-dir", str(tmp_path / "no-data"), "--out", str(out), "--no-progress")
    assert done.returncode == 2 and "dataset not found" in done.stderr, done.stderr
    assert not out.exists()
    out.mkdir()
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "canary_exploit,frr",
                  "--data-dir", str(tmp_path / "no-data"), "--out", str(out), "--no-progress")
    assert done.returncode == 2 and out.is_dir()


def test_judge_same_as_model_warns_loudly(tmp_path: Path, canned_server: Any) -> None:
    same = spec(canned_server, "canned")
    done = purple("eval", "--model", same, "--judge", same, "--benchmark", "prompt_injection", "--limit", "1",
                  "--out", str(tmp_path / "run"), "--no-cache", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "THE JUDGE IS THE MODEL UNDER TEST" in done.stderr


def test_resume_runs_errored_cases_again(tmp_path: Path, canned_server: Any) -> None:
    """A case whose latest record is an error runs again on --resume; its new record supersedes the old one in
    the stats and in `purple report`, and cases that succeeded are never asked again."""
    out = tmp_path / "run"
    args = ["eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--concurrency", "1",
            "--retries", "0", "--out", str(out), "--no-cache", "--no-progress"]
    canned_server.fail_next = [500, 500]
    try:
        first = purple(*args)
    finally:
        canned_server.fail_next = []
    # two of six cases failed: the reports are written, but the run is incomplete (exit 2), in eval and report
    assert first.returncode == 2 and "2 case(s) failed" in first.stderr, first.stderr
    assert "2 of 6 case(s) failed, more than --max-error-rate 0 allows" in first.stderr
    assert "--resume" in first.stderr.splitlines()[-1] and (out / "report.html").exists()
    assert purple("report", str(out)).returncode == 2
    assert purple("report", str(out), "--max-error-rate", "0.4").returncode == 0
    asked = len(canned_server.requests)
    done = purple(*args, "--resume")
    assert done.returncode == 0 and "failed" not in done.stderr, done.stderr
    assert len(canned_server.requests) - asked == 2  # only the two errored cases
    lines = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and len({r["key"] for r in lines}) == 6  # append-only: the later record wins
    for run in (done, purple("report", str(out))):
        assert run.returncode == 0 and "frr [" in run.stdout and "6 case(s), 0 error(s)" in run.stdout
        entry = next(iter(json.loads((out / "stats.json").read_text())["benchmarks"]["frr"].values()))
        assert entry["count"] == 6 and entry["errors"] == 0
    again = purple(*args, "--resume")
    assert again.returncode == 0 and len(canned_server.requests) - asked == 2  # nothing left to do


def test_resume_is_checked_against_the_run(tmp_path: Path, canned_server: Any) -> None:
    """--resume needs a run in --out made with the same settings; else one line, exit 2, nothing written."""
    missing = tmp_path / "missing"
    done = purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--out",
                  str(missing), "--resume", "--no-cache", "--no-progress")
    assert done.returncode == 2 and "holds no run to finish" in done.stderr and not missing.exists()
    out = tmp_path / "run"
    base = ["eval", "--benchmark", "frr", "--limit", "2", "--out", str(out), "--no-cache", "--no-progress"]
    assert purple(*base, "--model", spec(canned_server, "canned")).returncode == 0
    before = {path: path.read_bytes() for path in out.rglob("*")}
    for changed, named in ((["--model", spec(canned_server, "other")], "--model"),
                           (["--model", spec(canned_server, "canned"), "--limit", "3"], "--limit"),
                           (["--model", spec(canned_server, "canned"), "--benchmark", "frr,canary_exploit"],
                            "--benchmark"),
                           (["--model", spec(canned_server, "canned"), "--max-tokens", "7"], "max_tokens")):
        done = purple(*base, *changed, "--resume")
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "was run with" in done.stderr
        assert named in done.stderr
        assert {path: path.read_bytes() for path in out.rglob("*")} == before
    assert purple(*base, "--model", spec(canned_server, "canned"), "--resume").returncode == 0


def test_deeply_nested_lines_do_not_break_report_or_resume(tmp_path: Path, canned_server: Any) -> None:
    """A line nested too deeply for json.loads (RecursionError) is skipped like a torn one in records.jsonl,
    and a response-cache entry holding one is asked again."""
    out, cache = tmp_path / "run", tmp_path / "cache"

    def run(folder: Path, *more: str) -> subprocess.CompletedProcess[str]:
        return purple("eval", "--model", spec(canned_server, "canned"), "--benchmark", "frr", "--limit", "2",
                      "--out", str(folder), "--cache-dir", str(cache), "--no-progress", *more)

    assert run(out).returncode == 0
    with open(out / "records.jsonl", "a") as handle:
        handle.write("[" * 100_000 + "\n")
    for entry in cache.glob("*/*.json"):
        entry.write_text("[" * 100_000)
    for done in (purple("report", str(out)), run(out, "--resume"), run(tmp_path / "again")):
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert "2 case(s), 0 error(s)" in done.stdout
    assert all(json.loads(entry.read_text())["text"] for entry in cache.glob("*/*.json"))  # asked again
