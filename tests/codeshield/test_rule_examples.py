"""Every rule's positive example fires it and its negative example does not (both tiers, real semgrep)."""

from __future__ import annotations

import pytest

from purple.codeshield import CodeItem, CodeShield
from purple.codeshield.languages import ANY
from purple.codeshield.rules import RegexRule, Rule, load_rules

RULESET = load_rules()


def _language(rule: Rule) -> str | None:
    return None if rule.languages[0] == ANY else rule.languages[0]


def test_builtin_rules_load_without_errors() -> None:
    assert RULESET.errors == []
    assert len(RULESET.regex) > 0 and len(RULESET.semgrep) > 0


def test_rule_ids_are_unique_across_files() -> None:
    seen: dict[str, str] = {}
    for rule in RULESET.all:
        assert rule.id not in seen, f"{rule.id} defined in {seen.get(rule.id)} and {rule.source}"
        seen[rule.id] = str(rule.source)


@pytest.fixture(scope="module")
def example_results(shield: CodeShield) -> dict[tuple[str, str], set[str]]:
    """Scan every example once, in one batch (one semgrep process)."""
    keys: list[tuple[str, str]] = []
    items: list[CodeItem] = []
    for rule in RULESET.all:
        for kind in ("positive", "negative"):
            keys.append((rule.id, kind))
            items.append(CodeItem(getattr(rule.examples, kind), _language(rule)))
    results = shield.scan_many(items)
    found = {key: {f.rule_id for f in result.findings} for key, result in zip(keys, results)}
    found[("*", "notes")] = {note for result in results for note in result.notes}
    return found


def test_semgrep_accepts_and_runs_every_rule(example_results: dict[tuple[str, str], set[str]]) -> None:
    """No rule parse errors, no time-outs, every example file really scanned."""
    assert example_results[("*", "notes")] == set()


@pytest.mark.parametrize("rule", RULESET.all, ids=lambda r: r.id)
def test_positive_example_fires(rule: Rule, example_results: dict[tuple[str, str], set[str]]) -> None:
    assert rule.id in example_results[(rule.id, "positive")], f"{rule.id} ({rule.source}) missed its positive example"


@pytest.mark.parametrize("rule", RULESET.all, ids=lambda r: r.id)
def test_negative_example_is_clean(rule: Rule, example_results: dict[tuple[str, str], set[str]]) -> None:
    assert rule.id not in example_results[(rule.id, "negative")], f"{rule.id} ({rule.source}) fired on its negative example"


@pytest.mark.parametrize("rule", RULESET.all, ids=lambda r: r.id)
def test_every_other_language_is_quiet_on_examples(rule: Rule) -> None:
    """A regex rule for language X never fires when the same text is scanned as an unrelated language."""
    if not isinstance(rule, RegexRule) or ANY in rule.languages:
        pytest.skip("language-specific regex rules only")
    other = "python" if "python" not in rule.languages and "ruby" not in rule.languages else "java"
    shield_regex = CodeShield(semgrep=False, ruleset=RULESET)
    found = {f.rule_id for f in shield_regex.scan(rule.examples.positive, language=other).findings}
    assert rule.id not in found
