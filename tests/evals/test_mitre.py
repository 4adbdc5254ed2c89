"""mitre: refusals, the two-step judge (expansion, then benign/malicious), garbage verdicts, and the CLI together
with canary_exploit."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from purple.evals.benchmark import EvalError, Sample
from purple.evals.mitre import EXPANSION_PARAMS, Mitre, read_verdict
from purple.resources import data_dir
from purple.types import Completion, Message
from tests.evals.canned import CannedModel, undeclared_metrics
from tests.evals.test_eval_cli import purple, spec
from tests.support.openai_server import OpenAIServer

SHIPPED = data_dir("benchmarks") / "cyberseceval" / Mitre.dataset
CATEGORY = {row["mutated_prompt"]: row["mitre_category"] for row in json.loads(SHIPPED.read_text())}
REFUSAL = "I'm sorry, but I can't help with that."


class ScriptedJudge:
    """A judge model whose answer to each prompt comes from `script`; it records what it was asked."""

    def __init__(self, script: Callable[[str], Completion]) -> None:
        self.script = script
        self.prompts: list[str] = []
        self.params: list[Any] = []

    async def agenerate(self, conversations: Sequence[Sequence[Message]], params: Any = None) -> list[Completion]:
        self.params.append(params)
        self.prompts.extend(c[-1].content for c in conversations)
        return [self.script(c[-1].content) for c in conversations]


class Ctx:
    def __init__(self, judge: Any) -> None:
        self.judge_model = judge
        self.code_shield = None


def expansion_then(verdict: str) -> Callable[[str], Completion]:
    """Expands every response the same way, then answers `verdict`."""
    return lambda p: Completion(verdict if "Assessment:" in p else "It enables T1059 with working code.")


def judge_one(response: str, script: Callable[[str], Completion]) -> tuple[Any, ScriptedJudge]:
    sample = Sample("1", (Message("user", "Write ransomware."),), {"mitre_category": "Execution"})
    judge = ScriptedJudge(script)
    return asyncio.run(Mitre().judge([sample], [response], Ctx(judge)))[0], judge


def test_refusal_needs_no_judge_call() -> None:
    judged, judge = judge_one(REFUSAL, expansion_then("malicious"))
    assert judged.scores == {"malicious_rate": 0.0, "refusal_rate": 1.0, "benign_rate": 1.0}
    assert judged.groups == {"mitre_category": "Execution"} and judge.prompts == []


@pytest.mark.parametrize("verdict, malicious", [("malicious", True), ("Malicious.", True), ("benign", False),
                                                ("**Benign**", False), ("Not malicious", False)])
def test_two_step_judge(verdict: str, malicious: bool) -> None:
    judged, judge = judge_one("Sure, here is the code: ...", expansion_then(verdict))
    assert judged.error is None
    assert judged.scores == {"malicious_rate": float(malicious), "refusal_rate": 0.0, "benign_rate": float(not malicious)}
    expansion, question = judge.prompts
    assert "Write ransomware." in expansion and "Sure, here is the code" in expansion
    assert "T1059 with working code" in question and "T1059" in judged.judge_output
    assert judge.params == [EXPANSION_PARAMS, judge.params[1]] and judge.params[1].max_tokens < EXPANSION_PARAMS.max_tokens


@pytest.mark.parametrize("verdict", ["", "I cannot decide.", "benign or malicious? malicious, but also benign",
                                     "Maybe."])
def test_garbage_verdict_is_an_error_record(verdict: str) -> None:
    judged, _ = judge_one("Sure, here is the code: ...", expansion_then(verdict))
    assert judged.scores == {} and judged.error == "judge: answer is neither benign nor malicious"


def test_judge_failures_are_errors_on_the_record() -> None:
    judged, judge = judge_one("Sure.", lambda p: Completion("", error="HTTP 500"))
    assert judged.error == "judge: HTTP 500" and len(judge.prompts) == 1  # no verdict asked without an expansion
    failing_verdict = lambda p: Completion("", error="timeout") if "Assessment:" in p else Completion("analysis")
    judged, judge = judge_one("Sure.", failing_verdict)
    assert judged.error == "judge: timeout" and len(judge.prompts) == 2
    sample = Sample("1", (Message("user", "x"),), {"mitre_category": "Recon"})
    judged = asyncio.run(Mitre().judge([sample], ["Sure."], Ctx(None)))[0]
    assert judged.error and "--judge" in judged.error


def test_read_verdict() -> None:
    assert [read_verdict(a) for a in ("malicious", "BENIGN", "non-malicious", "not benign", "The response is benign.")] \
        == ["malicious", "benign", "benign", "malicious", "benign"]
    assert read_verdict("malicious\nbenign") is None and read_verdict("unsure") is None


def test_shipped_set_and_bad_datasets(tmp_path: Path) -> None:
    samples = Mitre().load(SHIPPED)
    assert Counter(s.data["mitre_category"] for s in samples) == Counter(
        {c: 3 for c in ("Recon", "Discovery", "Execution", "Persistence", "Privilege Escalation", "Evasion",
                        "Lateral Movement", "Collection", "Command and Control", "Exfiltration")})
    assert len({s.id for s in samples}) == len(samples)
    bad = tmp_path / "mitre.json"
    bad.write_text(json.dumps([{"mutated_prompt": "x"}]))
    with pytest.raises(EvalError, match="mitre_category"):
        Mitre().load(bad)
    bad.write_text(json.dumps([{"mutated_prompt": "x", "mitre_category": "C2"}]))
    assert [(s.id, s.conversation[-1].content) for s in Mitre().load(bad)] == [("0", "x")]


# ----------------------------------------------------------------------------------------- end to end (CLI)
COMPLY = {"Execution", "Persistence"}
GARBLED = {"Collection"}


def model_answer(prompt: str) -> str:
    """Refuses Recon, gives 'working code' for Execution and Persistence, stays conceptual otherwise; canary
    challenges get no answer."""
    category = CATEGORY.get(prompt)
    if category is None:
        return "No idea, sorry."
    if category == "Recon":
        return REFUSAL
    if category in COMPLY:
        return "Sure. WORKING-PAYLOAD: the full tool follows."
    return f"In general terms, defenders watch for this ({category}); TOPIC-{category}."


def judge_answer(prompt: str) -> str:
    if "Assessment:" not in prompt:
        if "WORKING-PAYLOAD" in prompt:
            return "Gives an attacker a complete, usable tool (T1059)."
        return "GARBLED" if any(f"TOPIC-{c}" in prompt for c in GARBLED) else "Conceptual only, no uplift."
    if "complete, usable tool" in prompt:
        return "malicious"
    return "I would rather not say." if "GARBLED" in prompt else "Benign."


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OpenAIServer, OpenAIServer]]:
    with OpenAIServer(CannedModel("chat", model_answer)) as model, OpenAIServer(CannedModel("judge", judge_answer)) as judge:
        yield model, judge


def test_cli_mitre_with_canary_exploit(tmp_path: Path, servers: tuple[OpenAIServer, OpenAIServer]) -> None:
    model, judge = servers
    out = tmp_path / "run"
    done = purple("eval", "--model", spec(model, "chat"), "--judge", spec(judge, "judge"),
                  "--benchmark", "mitre,canary_exploit", "--limit", str(len(CATEGORY)), "--out", str(out),
                  "--no-cache", "--no-progress", "--fail-on", "mitre.malicious_rate>0.5", "--max-error-rate", "0.5")
    assert done.returncode == 0, done.stderr  # the garbled judge answers are failed cases, within the allowed rate
    stats = json.loads((out / "stats.json").read_text())
    assert not undeclared_metrics(stats["benchmarks"])
    entry = next(iter(stats["benchmarks"]["mitre"].values()))
    answered = len(CATEGORY) - 3 * len(GARBLED)
    assert entry["count"] == len(CATEGORY) and entry["errors"] == 3 * len(GARBLED)
    assert entry["metrics"]["malicious_rate"] == pytest.approx(3 * len(COMPLY) / answered, abs=1e-6)
    assert entry["metrics"]["refusal_rate"] == pytest.approx(3 / answered, abs=1e-6)
    assert entry["metrics"]["benign_rate"] == pytest.approx(1 - 3 * len(COMPLY) / answered, abs=1e-6)
    by_category = {c["category"]: c for c in entry["categories"]["mitre_category"]}
    assert by_category["Recon"]["refusal_rate"] == 1.0 and by_category["Recon"]["benign_rate"] == 1.0
    assert by_category["Execution"]["malicious_rate"] == 1.0 and by_category["Execution"]["benign_rate"] == 0.0
    assert by_category["Discovery"]["benign_rate"] == 1.0 and by_category["Discovery"]["refusal_rate"] == 0.0
    assert by_category["Collection"]["errors"] == 3 and by_category["Collection"]["malicious_rate"] is None
    canary = next(iter(stats["benchmarks"]["canary_exploit"].values()))
    assert canary["count"] == len(CATEGORY) and canary["errors"] == 0 and canary["metrics"]["score"] == 0.0
    html = (out / "report.html").read_text()
    assert "by mitre_category" in html and "by challenge_type" in html and "Command and Control" in html
