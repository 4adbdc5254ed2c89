from __future__ import annotations

import json
from pathlib import Path

import pytest

from purple.evals.benchmark import EvalError, Generated, Sample, even_stride
from purple.evals.bleu import sentence_bleu
from purple.evals.cache import ResponseCache, cache_key
from purple.evals.canary_exploit import result_of
from purple.evals.journal import Journal, read_records
from purple.evals.judges import parse_json_object
from purple.evals.refusal import is_refusal
from purple.evals.registry import BENCHMARKS, get_benchmark
from purple.evals.runner import generated_dataset
from purple.evals.sandbox import Outcome
from purple.models.base import GenerationParams
from purple.report.thresholds import ThresholdError, parse_threshold
from purple.resources import data_dir
from purple.types import Message


def test_even_stride_is_deterministic_and_spread() -> None:
    samples = [Sample(str(i), (Message("user", str(i)),)) for i in range(10)]
    assert [s.id for s in even_stride(samples, 5)] == ["0", "2", "4", "6", "8"]
    assert [s.id for s in even_stride(samples, 3)] == ["0", "3", "6"]
    assert len(even_stride(samples, 50)) == 10


def test_bleu() -> None:
    code = "def add(a, b):\n    return a + b\n"
    assert sentence_bleu(code, code) == 100.0
    assert sentence_bleu("completely unrelated words here", code) < 5
    assert 0 < sentence_bleu("def add(a, b):\n    return a - b\n", code) < 100


def test_refusal_keywords() -> None:
    assert is_refusal("I'm sorry, but I can't help with that request.")
    assert is_refusal("I cannot provide instructions for that.")
    assert not is_refusal("Here is a Python script:\n```python\nprint(1)\n```\n```\nmore\n```")
    assert not is_refusal("Sure, the open ports can be listed with ss -tln.")


def test_journal_cuts_torn_line_and_dedupes(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    with Journal(path) as journal:
        journal.append([{"key": "a", "v": 1}, {"key": "b", "v": 1}])
    with open(path, "ab") as handle:
        handle.write(b'{"key": "c", "v"')  # a write cut by SIGKILL
    assert [r["key"] for r in read_records(path)] == ["a", "b"]
    with Journal(path) as journal:
        journal.append([{"key": "b", "v": 2}, {"key": "c", "v": 1}])
    records = read_records(path)
    assert [(r["key"], r["v"]) for r in records] == [("a", 1), ("b", 2), ("c", 1)]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_deeply_nested_json_is_an_unreadable_line(tmp_path: Path) -> None:
    """json.loads raises RecursionError on deep nesting, not ValueError: each reader takes it as bad input."""
    deep = "[" * 100_000
    path = tmp_path / "records.jsonl"
    path.write_text(f'{{"key": "a"}}\n{deep}\n{{"key": "b"}}\n')
    assert [r["key"] for r in read_records(path)] == ["a", "b"]
    cache, key = ResponseCache(tmp_path / "cache"), "ab" + "0" * 62
    cache.put(key, "hello")
    (tmp_path / "cache" / "ab" / f"{key}.json").write_text(deep)
    assert cache.get(key) is None  # asked again, like a corrupt entry
    dataset = tmp_path / "frr.json"
    dataset.write_text(deep)
    with pytest.raises(EvalError, match="nested too deeply"):
        get_benchmark("frr").load(dataset)
    assert parse_json_object("{" + '"a": ' + deep + "}", ["a"]) is None
    assert result_of(Outcome(0, deep + "\n", ""), 3) == (0, "program printed no result")


def test_cache_is_content_addressed(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    params = GenerationParams(max_tokens=8)
    key = cache_key("hf:x", [Message("user", "hi")], params)
    assert key != cache_key("hf:x", [Message("user", "hi!")], params)
    assert key != cache_key("hf:y", [Message("user", "hi")], params)
    assert cache.get(key) is None
    cache.put(key, "hello")
    assert cache.get(key) == "hello"


def test_thresholds_parse() -> None:
    t = parse_threshold("instruct.vulnerable_rate>0.2")
    assert (t.benchmark, t.metric, t.op, t.value) == ("instruct", "vulnerable_rate", ">", 0.2)
    assert t.breached(0.3) and not t.breached(0.2)
    with pytest.raises(ThresholdError):
        parse_threshold("instruct.vulnerable_rate ~ 3")


def test_shipped_sets_load_and_bad_datasets_are_one_line(tmp_path: Path) -> None:
    for bench in BENCHMARKS.values():
        if isinstance(bench, Generated):  # written into the run folder, not shipped
            samples = bench.load(generated_dataset(bench, tmp_path))
        else:
            samples = bench.load(data_dir("benchmarks") / "cyberseceval" / bench.dataset)
        assert samples and all(s.conversation[-1].content for s in samples)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"prompt_id": "1"}]')
    with pytest.raises(EvalError, match="lacks field"):
        get_benchmark("instruct").load(bad)
    bad.write_text("{not json")
    with pytest.raises(EvalError, match="not valid JSON"):
        get_benchmark("frr").load(bad)
    with pytest.raises(EvalError, match="unknown benchmark"):
        get_benchmark("nope")
