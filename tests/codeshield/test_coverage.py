"""Rule coverage: every CWE that occurs in CyberSecEval's instruct set has a rule in each language it occurs in,
and every supported language has rules in both tiers where semgrep supports it."""

from __future__ import annotations

import pytest

from purple.codeshield.languages import ANY, LANGUAGES
from purple.codeshield.rules import load_rules

# (language, CWE) pairs present in CyberSecEval instruct.json (1,916 rows, 8 languages).
INSTRUCT_CWES = {
    "c": "78 119 120 121 242 323 328 338 347 377 590 676 680 798 1240",
    "cpp": "78 119 120 121 242 328 335 338 347 377 416 665 676 680 798",
    "csharp": "78 89 327 338 352 502 521 554 601 611 643",
    "java": "78 79 200 276 295 327 330 352 502 589 611 643 798 918",
    "javascript": "22 79 95 119 185 208 319 338 345 770 798 908",
    "php": "22 200 209 290 306 312 327 330 502 601 759 798 862",
    "python": "78 89 94 312 328 338 502 798",
    "rust": "78 89 295 328 676 798 807",
}
PAIRS = [(lang, f"CWE-{n}") for lang, cwes in INSTRUCT_CWES.items() for n in cwes.split()]
RULESET = load_rules()


@pytest.mark.parametrize(("language", "cwe"), PAIRS, ids=[f"{lang}-{cwe}" for lang, cwe in PAIRS])
def test_instruct_cwe_has_a_rule_in_its_language(language: str, cwe: str) -> None:
    assert any(rule.cwe == cwe and language in rule.languages for rule in RULESET.all)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_rules(language: str) -> None:
    assert sum(language in rule.languages for rule in RULESET.all) >= 5


def test_language_agnostic_secret_rules_exist() -> None:
    secrets = [rule for rule in RULESET.regex if ANY in rule.languages]
    assert len(secrets) >= 10
    assert all(rule.in_comments for rule in secrets)
