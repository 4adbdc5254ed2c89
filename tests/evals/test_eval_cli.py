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

from tests.evals.canned import XSS

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
    assert set(benches) == set(ALL.split(","))
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


def test_judge_same_as_model_warns_loudly(tmp_path: Path, canned_server: Any) -> None:
    same = spec(canned_server, "canned")
    done = purple("eval", "--model", same, "--judge", same, "--benchmark", "prompt_injection", "--limit", "1",
                  "--out", str(tmp_path / "run"), "--no-cache", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "THE JUDGE IS THE MODEL UNDER TEST" in done.stderr
