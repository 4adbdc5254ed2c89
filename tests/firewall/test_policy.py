"""Policies: Python and YAML, presets, the registry, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from purple.firewall import (
    DETECTORS,
    DetectorPolicy,
    Firewall,
    Policy,
    PolicyError,
    load_policy,
    policy_from_yaml,
    preset,
)
from purple.firewall.policy import decide
from purple.types import Decision
from tests.firewall.support import Keyword

GOOD = """\
name: support-bot
budget_ms: 250
on_error: open
on_block: refuse
refusal: Sorry, I can't do that.
stream_window: 64
detectors:
  injection: {review_at: 0.5, block_at: 0.9}
  words:
    use: regex
    patterns:
      - {name: codename, pattern: '(?i)project\\s+falcon', score: 1.0}
    on_error: closed
roles:
  user: [injection, hidden_unicode, words]
  assistant: [code_shield, secrets]
  tool: []
"""


def test_yaml_policy_reads_every_setting() -> None:
    policy = policy_from_yaml(GOOD, "good.yaml")
    assert policy.name == "support-bot" and policy.budget_ms == 250 and policy.on_error == "open"
    assert (
        policy.on_block == "refuse"
        and policy.refusal == "Sorry, I can't do that."
        and policy.stream_window == 64
    )
    assert policy.roles == {
        "user": ("injection", "hidden_unicode", "words"),
        "assistant": ("code_shield", "secrets"),
        "tool": (),
    }
    assert policy.detector("injection") == DetectorPolicy("injection", review_at=0.5, block_at=0.9)
    words = policy.detector("words")
    assert words.use == "regex" and words.on_error == "closed" and words.where == "good.yaml:9"
    assert words.options == {
        "patterns": [{"name": "codename", "pattern": "(?i)project\\s+falcon", "score": 1.0}]
    }
    assert policy.detector("secrets") == DetectorPolicy("secrets")  # not defined: registry defaults
    assert policy.used() == ["injection", "hidden_unicode", "words", "code_shield", "secrets"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("roles:\n  user: [injection, nope]\n", "p.yaml:2: roles.user: detector 'nope' is neither defined"),
        ("roles:\n  robot: [injection]\n", "p.yaml:2: unknown role 'robot'"),
        (
            "detectors:\n  injection:\n    review_at: 2\nroles: {user: [injection]}\n",
            "p.yaml:3: detectors.injection: review_at must be a number in [0, 1], got 2",
        ),
        (
            "detectors:\n  injection:\n    review_at: 0.9\n    block_at: 0.5\nroles: {user: [injection]}\n",
            "p.yaml:3: detectors.injection: review_at (0.9) must not be above block_at (0.5)",
        ),
        (
            "detectors:\n  code_shield:\n    semgrp: false\nroles: {user: [code_shield]}\n",
            "p.yaml:3: detectors.code_shield: code_shield has no option 'semgrp'",
        ),
        (
            "detectors:\n  x:\n    use: regexx\nroles: {user: [x]}\n",
            "p.yaml:3: detectors.x: unknown detector 'regexx'",
        ),
        ("roles: {user: [regex]}\nbudget_ms: -5\n", "p.yaml:2: budget_ms must be in (0, 600000]"),
        ("roles: {user: [regex]}\non_error: maybe\n", "p.yaml:2: on_error must be 'open' or 'closed'"),
        ("roles: {user: [regex]}\nrolez: {}\n", "p.yaml:2: unknown key 'rolez'"),
        ("name: x\n", "p.yaml:1: the policy has no `roles`"),
        ("roles:\n  user: [a\n", "p.yaml:3: not valid YAML"),
        ("roles:\n  user: [regex]\n  user: [pii]\n", "p.yaml:3: duplicate key 'user' (first on line 2)"),
        ("base: &b [regex]\nroles:\n  user: *b\n", "p.yaml:3: YAML aliases (*b) are not allowed"),
        ("roles:\n  user: injection\n", "p.yaml:2: roles.user must be a list of detector names"),
        ("- just\n- a list\n", "p.yaml:1: a policy is a mapping"),
    ],
)
def test_bad_yaml_names_the_line(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_from_yaml(text, "p.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_detector_build_errors_name_the_policy_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "roles:\n  user: [words]\ndetectors:\n  words:\n    use: regex\n    patterns:\n"
        "      - {name: broken, pattern: '(unclosed'}\n"
    )
    policy = load_policy(path)  # the file is well formed; the pattern fails when the detector is built
    with pytest.raises(
        PolicyError, match=rf"^{path}:4: detector 'words' cannot be built: pattern 'broken' is not a valid"
    ):
        Firewall(policy)
    for text, message in [
        ("roles:\n  user: [regex]\n", "the regex detector needs `patterns`"),
        ("detectors:\n  regex: {patterns: 'x'}\nroles:\n  user: [regex]\n", "`patterns` must be a list"),
        (
            "detectors:\n  code_shield: {rules: rules/}\nroles:\n  user: [code_shield]\n",
            "`rules` must be a list",
        ),
        (
            "detectors:\n  code_shield: {semgrep: maybe}\nroles:\n  user: [code_shield]\n",
            "true, false or auto",
        ),
    ]:
        path.write_text(text)
        with pytest.raises(PolicyError, match=message):
            Firewall(load_policy(path))


def test_policy_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="missing.yaml: no such policy file"):
        load_policy(tmp_path / "missing.yaml")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"roles: {user: [pii]}\n\xff\xfe")
    with pytest.raises(PolicyError, match="not UTF-8 text"):
        load_policy(binary)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 1_000_001)
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)


def test_python_policies_validate_and_take_detector_objects() -> None:
    keyword = Keyword("boom")
    policy = Policy(roles={"user": ["boom", "boom", "pii"]}, detectors={"boom": keyword})
    assert policy.roles["user"] == ("boom", "pii")  # duplicates dropped, order kept
    assert policy.detector("boom").use is keyword
    firewall = Firewall(policy)
    assert firewall.detectors["boom"] is keyword
    for bad, message in [
        ({"roles": {"user": ["nope"]}}, "neither defined"),
        ({"roles": {"wizard": []}}, "unknown role"),
        ({"roles": {"user": ["pii"]}, "budget_ms": 0}, "budget_ms"),
        ({"roles": {"user": ["pii"]}, "stream_window": 3}, "stream_window"),
        ({"roles": {"user": ["pii"]}, "on_block": "explode"}, "on_block"),
        ({"roles": {"user": ["pii"]}, "name": ""}, "name must be"),
        ({"roles": {"user": ["x"]}, "detectors": {"x": 42}}, "registry name or a Detector"),
    ]:
        with pytest.raises(PolicyError, match=message):
            Policy(**bad)  # type: ignore[arg-type]
    with pytest.raises(PolicyError, match="options apply"):
        DetectorPolicy(keyword, options={"a": 1})


def test_thresholds() -> None:
    assert decide(0.95, 0.5, 0.9) is Decision.BLOCK
    assert decide(0.9, 0.5, 0.9) is Decision.BLOCK
    assert decide(0.6, 0.5, 0.9) is Decision.HUMAN_REVIEW
    assert decide(0.2, 0.5, 0.9) is Decision.ALLOW
    assert decide(0.99, None, None) is Decision.ALLOW
    assert decide(0.7, 0.5, None) is Decision.HUMAN_REVIEW


def test_presets_and_the_registry() -> None:
    assert set(DETECTORS) == {
        "injection",
        "code_shield",
        "hidden_unicode",
        "regex",
        "secrets",
        "pii",
        "llama_guard",
        "content",
        "alignment",
    }
    for name in ("chatbot", "coding", "agent"):
        policy = load_policy(name)
        assert policy.name == name and policy == preset(name)
        assert "injection" in policy.roles["user"] and "code_shield" in policy.roles["assistant"]
    assert "alignment" in preset("agent").roles["assistant"]
    assert preset("chatbot").detector("code_shield").options == {"semgrep": False}
    with pytest.raises(PolicyError, match="unknown preset"):
        preset("pirate")
