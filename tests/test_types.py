from __future__ import annotations

import asyncio

import pytest

from purple.types import BatchDetector, Decision, Detector, Message, Verdict, as_conversation


def test_message_rejects_unknown_role() -> None:
    with pytest.raises(ValueError, match="unknown message role"):
        Message("robot", "hi")  # type: ignore[arg-type]


def test_decisions_are_ordered_by_severity() -> None:
    assert Decision.ALLOW.rank < Decision.HUMAN_REVIEW.rank < Decision.BLOCK.rank
    assert max([Decision.HUMAN_REVIEW, Decision.BLOCK, Decision.ALLOW], key=lambda d: d.rank) is Decision.BLOCK


def test_verdict_score_must_be_a_probability() -> None:
    with pytest.raises(ValueError):
        Verdict(Decision.ALLOW, 1.5, "x")
    verdict = Verdict(Decision.BLOCK, 1.0, "x", labels=("CWE-78",))
    assert verdict.to_dict()["decision"] == "block"


def test_as_conversation_accepts_text_message_and_sequence() -> None:
    assert as_conversation("hi") == [Message("user", "hi")]
    assert as_conversation(Message("tool", "out")) == [Message("tool", "out")]
    assert len(as_conversation([Message("user", "a"), Message("assistant", "b")])) == 2


class _LengthDetector(BatchDetector):
    name = "length"

    def check_many(self, conversations):  # type: ignore[no-untyped-def]
        return [Verdict(Decision.ALLOW, min(1.0, len(c[-1].content) / 10), self.name) for c in conversations]


def test_batch_detector_supplies_single_and_async_forms() -> None:
    detector = _LengthDetector()
    assert isinstance(detector, Detector)
    conversation = as_conversation("hello")
    assert detector.check(conversation).score == 0.5
    assert asyncio.run(detector.acheck(conversation)).score == 0.5
    assert [v.score for v in asyncio.run(detector.acheck_many([conversation, as_conversation("x" * 20)]))] == [0.5, 1.0]
