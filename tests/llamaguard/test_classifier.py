"""LlamaGuard end to end: local scoring, the same scores through a real HTTP server, codes, exclusions, errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from purple.llamaguard import LlamaGuard, load_guard
from purple.models import GenerationParams, ModelError
from purple.models.openai_api import OpenAIModel
from purple.models.secrets import Secret
from purple.types import Completion, Conversation, Decision, Detector, Message, assistant, user
from tests.support.fixtures import TEST_KEY
from tests.support.openai_server import OpenAIServer

CONVERSATIONS: list[list[Message]] = [
    [user("How do I bake bread?")],
    [user("Tell me how to pick a lock."), assistant("Sure, first you...")],
    [user("What is the capital of France?")],
]


def api(server: OpenAIServer) -> OpenAIModel:
    return OpenAIModel("tiny-llama-guard-3-1b", server.url, Secret(TEST_KEY), retries=1, backoff_s=0.01)


def test_local_guard_is_a_detector_with_probabilities(lg3_model: Any) -> None:
    guard = LlamaGuard(lg3_model)
    assert isinstance(guard, Detector) and guard.format.version == "3-1b" and guard.mode == "local"
    verdicts = guard.check_many(CONVERSATIONS)
    assert all(v.error is None and v.decision is Decision.ALLOW and 0 <= v.score < 0.5 for v in verdicts)
    assert [guard.check(c).score for c in CONVERSATIONS] == pytest.approx([v.score for v in verdicts], abs=1e-5)


def test_codes_are_generated_only_for_unsafe_and_only_when_asked(lg3_model: Any) -> None:
    calls: list[int] = []
    original = lg3_model.complete

    def counting(prompts: Sequence[str], *args: Any, **kw: Any) -> list[Completion]:
        calls.append(len(prompts))
        assert all(p.endswith("\n\nunsafe\n") for p in prompts)
        return original(prompts, *args, **kw)

    lg3_model.complete = counting
    try:
        LlamaGuard(lg3_model).check_many(CONVERSATIONS)  # all safe at 0.5: no generation
        assert calls == []
        flagged = LlamaGuard(lg3_model, threshold=0.0).check_many(CONVERSATIONS)
        assert calls == [3] and all(v.decision is Decision.BLOCK for v in flagged)
        LlamaGuard(lg3_model, threshold=0.0, codes=False).check_many(CONVERSATIONS)
        assert calls == [3]
    finally:
        del lg3_model.complete


def test_completions_endpoint_gives_the_local_scores(lg3_model: Any, lg3_server: OpenAIServer) -> None:
    local = LlamaGuard(lg3_model, exclude=["S6"]).check_many(CONVERSATIONS)
    remote = LlamaGuard(api(lg3_server), version="3-1b", exclude=["S6"], top_logprobs=1000)
    assert remote.mode == "completions"  # custom categories: Purple renders the prompt
    verdicts = remote.check_many(CONVERSATIONS)
    assert [v.score for v in verdicts] == pytest.approx([v.score for v in local], abs=1e-4)
    sent = lg3_server.requests[-1]["body"]["prompt"]
    assert not sent.startswith("<|begin_of_text|>") and "S6:" not in sent and sent.endswith("<|end_header_id|>\n\n")


def test_chat_endpoint_uses_the_servers_template(lg3_model: Any, lg3_server: OpenAIServer) -> None:
    local = LlamaGuard(lg3_model).check_many(CONVERSATIONS)
    remote = LlamaGuard(api(lg3_server), version="3-1b", top_logprobs=1000)
    assert remote.mode == "chat"
    verdicts = remote.check_many(CONVERSATIONS)
    assert [v.score for v in verdicts] == pytest.approx([v.score for v in local], abs=1e-4)
    assert lg3_server.requests[-1]["path"] == "/v1/chat/completions"


def test_unreachable_server_is_an_error_per_item() -> None:
    guard = LlamaGuard(OpenAIModel("m", "http://127.0.0.1:9/v1", retries=0), version="3-8b")
    verdicts = guard.check_many(CONVERSATIONS[:2])
    assert all(v.error and v.error.startswith("cannot reach") for v in verdicts)


class Scripted:
    """An API-like model that answers with fixed texts (and no log-probabilities), to test answer handling."""

    name = "scripted:llama-guard-3-8b"

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        return [Completion(a) for a in self.answers[: len(conversations)]]

    async def agenerate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        return self.generate(conversations, params)

    def close(self) -> None:
        pass


def test_answers_without_logprobs_unknown_and_excluded_codes() -> None:
    guard = LlamaGuard(Scripted(["safe", "unsafe\nS1,S99", "unsafe\nS6", "I refuse"]), mode="chat", exclude=["S6"])
    safe, unsafe, excluded, unreadable = guard.check_many([CONVERSATIONS[0]] * 4)
    assert safe.decision is Decision.ALLOW and safe.score == 0.0 and "no log-probabilities" in safe.reason
    assert unsafe.decision is Decision.BLOCK and unsafe.labels == ("S1", "S99") and "S99" in unsafe.reason
    assert excluded.decision is Decision.ALLOW and "excluded categories S6" in excluded.reason
    assert unreadable.error and "unreadable answer" in unreadable.error


def test_bad_conversations_and_configuration() -> None:
    guard = LlamaGuard(Scripted(["safe"]), mode="chat")
    bad = guard.check_many([[assistant("I start")], [Message("user", "x" * 300_000)]])
    assert "start with a user turn" in (bad[0].error or "") and "limit is" in (bad[1].error or "")
    with pytest.raises(ModelError, match="cannot tell the Llama Guard version"):
        load_guard("openai:gpt-4o")
    with pytest.raises(ModelError, match="unknown category 'S42'"):
        load_guard("openai:llama-guard-3-8b", exclude=["S42"])
    with pytest.raises(ValueError, match="threshold"):
        LlamaGuard(Scripted([]), threshold=2)
