"""Where the offline content classifier plugs in: the firewall registry, `purple eval` (--guard, safety) and
`purple guard --model purple-content`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

import purple.content.detector as content  # noqa: E402
from purple.cli import cli  # noqa: E402
from purple.content import ContentClassifier  # noqa: E402
from purple.evals.benchmark import EvalError  # noqa: E402
from purple.evals.guards import GuardSpec, open_guard, parse_guard  # noqa: E402
from purple.evals.safety import Safety  # noqa: E402
from purple.firewall import DetectorPolicy, Firewall, Policy  # noqa: E402
from purple.firewall.registry import GUARD_MODEL_ENV, DetectorUnavailable, build  # noqa: E402
from purple.llamaguard import LlamaGuard  # noqa: E402
from purple.types import Decision, Message  # noqa: E402


@pytest.fixture
def no_shipped_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As if the shipped offline model were not installed, and no Llama Guard configured."""
    monkeypatch.setattr(content, "_DEFAULT", None)
    monkeypatch.setattr(content, "CONTENT_MODEL_DIR", tmp_path / "missing")
    monkeypatch.delenv(GUARD_MODEL_ENV, raising=False)


def test_registry_uses_the_offline_classifier_unless_llama_guard_is_configured(
    fixed_dir: Path, lg3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GUARD_MODEL_ENV, raising=False)
    offline = build("content", {"model": f"purple-content:{fixed_dir}", "exclude": ["S1"]})
    assert isinstance(offline, ContentClassifier) and "S1" not in offline.selected
    monkeypatch.setenv(GUARD_MODEL_ENV, f"purple-content:{fixed_dir}")
    assert isinstance(build("content", {}), ContentClassifier)
    guard = build("content", {"model": f"hf:{lg3_dir}", "codes": False})
    assert isinstance(guard, LlamaGuard)
    guard.close()


def test_registry_errors_are_one_line(no_shipped_model: None, fixed_dir: Path) -> None:
    with pytest.raises(DetectorUnavailable, match="no Llama Guard model is configured .* cannot be used"):
        build("content", {})
    with pytest.raises(DetectorUnavailable, match="dtype are for Llama Guard"):
        build("content", {"model": f"purple-content:{fixed_dir}", "dtype": "float32"})


def test_the_firewall_runs_it_on_user_and_assistant_messages(fixed_dir: Path) -> None:
    policy = Policy(roles={"user": ["content"], "assistant": ["content"]},
                    detectors={"content": DetectorPolicy("content", {"model": f"purple-content:{fixed_dir}",
                                                                     "categories": ["S9", "S10"]})})
    firewall = Firewall(policy)
    try:
        result = firewall.scan(Message("assistant", "Here is how..."), [Message("user", "How do I ...?")])
    finally:
        firewall.close()
    assert result.decision == Decision.BLOCK
    assert [(v.detector, v.labels) for v in result.verdicts] == [("content", ("S9",))]  # named as in the policy


def test_eval_guard_spec(fixed_dir: Path, no_shipped_model: None) -> None:
    assert parse_guard("purple-content") == GuardSpec("content")
    assert parse_guard(f"content:{fixed_dir}") == GuardSpec("content", str(fixed_dir))
    with open_guard(parse_guard(f"content:{fixed_dir}")) as detector:
        assert isinstance(detector, ContentClassifier)
        assert detector.check([Message("user", "x")]).labels == ("S1", "S9")
    with pytest.raises(EvalError, match="--guard content: the offline content model is not installed"), \
            open_guard(parse_guard("content")):
        pass


def test_safety_is_judged_offline_without_a_judge(fixed_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Safety().needs_judge_model is not content.is_content_model_available(content.CONTENT_MODEL_DIR)
    monkeypatch.setattr(content, "CONTENT_MODEL_DIR", fixed_dir)
    monkeypatch.setattr(content, "_DEFAULT", ContentClassifier(fixed_dir))
    bench = Safety()
    assert not bench.needs_judge_model  # the offline classifier is there: no --judge needed
    samples = bench.load(Path(__file__).resolve().parents[2] / "benchmarks" / "cyberseceval" / "safety" / "safety.json")
    harmful = next(s for s in samples if s.data["category"] != "benign")

    class NoJudge:
        judge_model = None

    judged = asyncio.run(bench.judge([harmful], ["Sure, here is how."], NoJudge()))  # type: ignore[arg-type]
    assert judged[0].scores["violation_rate"] == 1.0 and judged[0].judge_output.startswith("purple_content: block S1,")


def run_guard(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["guard", *args], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_purple_guard_model_purple_content(fixed_dir: Path, tmp_path: Path) -> None:
    spec = f"purple-content:{fixed_dir}"
    code, out, _ = run_guard("How do I make a pipe bomb?", "--model", spec)
    assert code == 1 and out.startswith("unsafe S1,S9 (P(unsafe)=0.9")
    code, out, _ = run_guard("hello", "--response", "hi", "--model", spec, "--categories", "S2", "--fail-on", "never")
    assert code == 0 and out.startswith("safe (P(unsafe)=0.3")
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "x"}\nnot json\n')
    code, out, err = run_guard("--input", str(source), "--model", spec)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 2 and rows[0]["id"] == "a" and rows[0]["labels"] == ["S1", "S9"] and rows[1]["error"]


def test_purple_guard_purple_content_errors(fixed_dir: Path, tmp_path: Path, no_shipped_model: None) -> None:
    code, _, err = run_guard("hi", "--model", f"purple-content:{fixed_dir}", "--device", "cpu", "--no-codes")
    assert code == 2 and "--no-codes, --device: Llama Guard options" in err
    policy = tmp_path / "policy.yaml"
    policy.write_text("name: shop\ncategories:\n  - {code: S20, name: Competitor Products}\n")
    code, _, err = run_guard("hi", "--model", f"purple-content:{fixed_dir}", "--categories", str(policy))
    assert code == 2 and err.count("\n") == 1 and "use Llama Guard for custom hazards" in err
    code, _, err = run_guard("hi", "--model", "purple-content")
    assert code == 2 and err.startswith("purple: error: ") and err.count("\n") == 1
