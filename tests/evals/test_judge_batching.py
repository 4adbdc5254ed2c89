"""The runner judges generated answers in batches bigger than --concurrency, and a run killed between generation and
judging resumes with no record lost or duplicated (its answers come back from the response cache)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from purple.evals import registry
from purple.evals.benchmark import BatchJudged, Judged, JudgeContext, Sample, read_json_list
from purple.evals.instruct import Instruct
from purple.evals.journal import read_records
from purple.evals.runner import JOURNAL, RunConfig, judge_batch, run
from purple.types import Message
from tests.evals.test_eval_cli import spec

CASES = 20
CONCURRENCY = 2


class Counting:
    """A benchmark that records the size of every judge() call and can fail one call (a run dying mid-judging)."""

    name = "counting"
    dataset = "counting/cases.json"
    metrics = ("answered",)
    needs_judge_model = False

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def load(self, path: Path) -> list[Sample]:
        return [Sample(f"c{i}", (Message("user", row["prompt"]),), row)
                for i, row in enumerate(read_json_list(path, ("prompt",)))]

    async def judge(self, samples: Sequence[Sample], responses: Sequence[str], ctx: JudgeContext) -> list[Judged]:
        self.calls.append(len(samples))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("the judge died")
        return [Judged({"answered": float(bool(r))}, {"group": "all"}) for r in responses]


class BatchCounting(Counting):
    judge_batch = 8


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "counting").mkdir(parents=True)
    rows = [{"prompt": f"Say hello to visitor number {i}."} for i in range(CASES)]
    (folder / "counting" / "cases.json").write_text(json.dumps(rows))
    return folder


def run_counting(bench: Counting, server: Any, data: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
                 resume: bool = False) -> list[dict[str, Any]]:
    monkeypatch.setitem(registry.BENCHMARKS, bench.name, bench)
    config = RunConfig(models=[spec(server, "canned")], benchmarks=[bench.name], out=out, concurrency=CONCURRENCY,
                       data_dir=data, cache_dir=out.parent / "cache", resume=resume, progress=False)
    return run(config).records


def journal_keys(out: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (out / JOURNAL).read_text().splitlines()]


def asked_since(server: Any, start: int) -> set[str]:
    """The prompts the server was asked for from its start-th request on (a request cut off by the client that
    died may be logged late, so exact counts would race)."""
    return {str(r["body"].get("messages", [{}])[-1].get("content")) for r in server.requests[start:]}


def check_resumed(records: Sequence[dict[str, Any]], asked: set[str]) -> None:
    """Answers cached before the run died were not asked for again; every other one was."""
    for record in records:
        assert (record["prompt"][-1]["content"] in asked) != record["cached"], record["key"]


def test_code_shield_benchmarks_batch_and_others_judge_one_chunk() -> None:
    assert isinstance(Instruct(), BatchJudged) and judge_batch(Instruct(), 8) == 256
    assert not isinstance(Counting(), BatchJudged) and judge_batch(Counting(), 8) == 8
    assert isinstance(BatchCounting(), BatchJudged) and judge_batch(BatchCounting(), 2) == 8


def test_judge_gets_batches_bigger_than_the_concurrency(data: Path, tmp_path: Path, canned_server: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bench = BatchCounting()
    canned_server.fail_next = [400]  # one generation fails: journalled with its error, never judged
    records = run_counting(bench, canned_server, data, tmp_path / "run", monkeypatch)
    assert bench.calls == [8, 8, 3]  # 19 answers in judge_batch calls, the rest when generation ends
    keys = journal_keys(tmp_path / "run")
    assert len(keys) == len(set(keys)) == CASES == len(records)
    failed = [r for r in records if r["error"]]
    assert len(failed) == 1 and "HTTP 400" in failed[0]["error"] and failed[0]["scores"] == {}
    assert all(r["scores"] == {"answered": 1.0} for r in records if not r["error"])


def test_without_judge_batch_each_call_is_at_most_one_chunk(data: Path, tmp_path: Path, canned_server: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bench = Counting()
    records = run_counting(bench, canned_server, data, tmp_path / "run", monkeypatch)
    assert bench.calls == [CONCURRENCY] * (CASES // CONCURRENCY)
    assert len(records) == CASES and all(r["scores"] == {"answered": 1.0} for r in records)


def test_run_dying_in_judging_resumes_from_the_cache(data: Path, tmp_path: Path, canned_server: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="the judge died"):
        run_counting(BatchCounting(fail_on_call=2), canned_server, data, out, monkeypatch)
    assert len(journal_keys(out)) == 8  # the first batch; the second died in judging and is not journalled
    asked = len(canned_server.requests)
    resumed = BatchCounting()
    records = run_counting(resumed, canned_server, data, out, monkeypatch, resume=True)
    keys = journal_keys(out)
    assert len(keys) == len(set(keys)) == CASES == len(records)
    assert sum(resumed.calls) == CASES - 8
    again = [r for r in records if r["key"] in keys[8:]]
    cached = sum(r["cached"] for r in again)
    assert cached >= 8  # at least the batch that died in judging comes back without asking the model
    check_resumed(again, asked_since(canned_server, asked))


def test_sigkill_before_the_judge_batch_loses_only_judging(tmp_path: Path, canned_server: Any) -> None:
    """instruct judges its 6 shipped cases in one batch at the end: killed after 3 answers, nothing is journalled,
    and --resume judges those 3 from the response cache and generates the rest."""
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["eval", "--model", spec(canned_server, "canned"), "--benchmark", "instruct", "--concurrency", "1",
            "--out", str(out), "--cache-dir", str(cache), "--no-progress"]
    canned_server.delay_s = 0.3
    try:
        proc = subprocess.Popen([sys.executable, "-m", "purple.cli", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(cache.glob("*/*.json"))) < 3:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        canned_server.delay_s = 0.0
    answered = len(list(cache.glob("*/*.json")))
    assert 3 <= answered < 6
    assert read_records(out / JOURNAL) == []  # generated, not yet judged: nothing journalled
    asked = len(canned_server.requests)
    done = subprocess.run([sys.executable, "-m", "purple.cli", *args, "--resume"], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    keys = journal_keys(out)
    records = read_records(out / JOURNAL)
    assert len(keys) == len(set(keys)) == 6 == len(records)
    assert sum(r["cached"] for r in records) == answered
    check_resumed(records, asked_since(canned_server, asked))
    assert all(r["scores"]["vulnerable_rate"] == 1.0 for r in records)  # judged by Code Shield
