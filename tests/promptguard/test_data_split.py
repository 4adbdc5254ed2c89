"""The training corpus and its split by whole source (needs ../shared/datasets; skipped without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from purple.promptguard.data import (
    DROPPED_GROUPS,
    HARD_NEGATIVE_GROUPS,
    HELD_OUT_GROUPS,
    load_corpus,
    split,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
pytestmark = pytest.mark.skipif(not (DATA / "injection_extra").is_dir(), reason="../shared/datasets not present")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(DATA)


@pytest.fixture(scope="module")
def parts(corpus):
    return split(corpus)


def test_held_out_sources_are_whole(parts) -> None:
    train_groups = {e.group for e in parts.train} | {e.group for e in parts.val}
    test_groups = {e.group for e in parts.test}
    assert not train_groups & test_groups
    assert test_groups == HELD_OUT_GROUPS
    assert not (train_groups | test_groups) & DROPPED_GROUPS
    assert HARD_NEGATIVE_GROUPS <= HELD_OUT_GROUPS


def test_both_classes_are_held_out_and_trained(parts) -> None:
    for part in (parts.train, parts.val, parts.test):
        labels = {e.label for e in part}
        assert labels == {0, 1}
    test_pos = {e.group for e in parts.test if e.label}
    assert {"injection_extra/agentdojo", "cyberseceval/prompt_injection", "pyrit/templates-other"} <= test_pos


def test_harmful_and_security_texts_that_are_not_injections_train_as_benign(parts) -> None:
    groups = ("harmful_prompts_categorized/harmful", "harmful_prompts_categorized/cysecbench",
              "cyberseceval/instruct", "cyberseceval/interpreter", "cyberseceval/crwd_meta")
    found = [e for e in parts.train if e.group in groups]
    assert {e.group for e in found} == set(groups)
    assert all(e.label == 0 for e in found)
    assert {e.lang for e in found if e.group == "harmful_prompts_categorized/harmful"} > {"en", "fr", "zh"}
    quiz = next(e for e in found if e.group == "cyberseceval/crwd_meta")
    assert "\nA." in quiz.text  # the question with its options


def test_no_text_is_in_both_training_and_test(parts) -> None:
    import re

    def norm(t: str) -> str:
        return re.sub(r"\s+", " ", t.lower()).strip()

    train = {norm(e.text) for e in parts.train}
    assert not any(norm(e.text) in train for e in parts.test)


def test_split_is_deterministic() -> None:
    a = split(load_corpus(DATA, seed=5), seed=5)
    b = split(load_corpus(DATA, seed=5), seed=5)
    assert [e.text for e in a.train[:50]] == [e.text for e in b.train[:50]]
    assert len(a.test) == len(b.test)
