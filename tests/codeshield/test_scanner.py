from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from purple.codeshield import CodeItem, CodeShield, Treatment, extract_code_blocks
from purple.codeshield.rules import load_rules
from purple.types import Decision, Detector, Message, Severity

FIXTURE_RULES = Path(__file__).parent / "fixture_rules"
SHELL = 'import subprocess\n\ndef run(d):\n    subprocess.call("ls " + d, shell=True)\n'
MD5 = "import hashlib\n\ndef digest(p):\n    return hashlib.md5(p).hexdigest()\n"
CLEAN = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def shield() -> CodeShield:
    """A scanner with the tests' own two rules (one per tier) and real semgrep."""
    return CodeShield(rule_dirs=[FIXTURE_RULES], include_builtin_rules=False, semgrep=True)


def test_regex_finding_carries_location_and_line(shield: CodeShield) -> None:
    result = shield.scan(MD5, "python")
    finding = next(f for f in result.findings if f.cwe == "CWE-328")
    assert (finding.line, finding.column) == (4, 12)
    assert finding.snippet == "return hashlib.md5(p).hexdigest()"
    assert finding.severity is Severity.WARNING and finding.tier == "regex"
    assert result.treatment is Treatment.WARN


def test_semgrep_tier_really_scans(shield: CodeShield) -> None:
    result = shield.scan(SHELL, "python")
    assert [(f.rule_id, f.line, f.tier) for f in result.findings] == [("test.shell-true", 4, "semgrep")]


def test_commented_out_code_is_ignored(shield: CodeShield) -> None:
    assert not shield.scan("# hashlib.md5(p)\nx = 1\n", "python").findings


def test_language_comes_from_path_then_content(shield: CodeShield) -> None:
    assert shield.scan(MD5, path="a.py").language == "python"
    assert shield.scan(MD5).language == "python"
    assert shield.scan("just some words", None).language is None


def test_other_languages_rules_do_not_fire() -> None:
    """No blind all-language scan: a Python function named strcpy gets no C findings."""
    builtin = CodeShield(semgrep=False)
    code = "import hashlib\n\ndef strcpy(dst, src):\n    return src\n\nstrcpy(buf, name)\ngets(buf)\n"
    found = builtin.scan(code).findings
    assert builtin.resolve_language(CodeItem(code)) == "python"
    assert all(f.rule_id.startswith(("python.", "secrets.")) for f in found)


def test_batch_equals_single_scans_and_uses_one_semgrep_process(
    shield: CodeShield, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [CodeItem(SHELL, "python"), CodeItem(CLEAN, "python"), CodeItem(MD5, "python"), CodeItem(SHELL)]
    single = [shield.scan(i.code, i.language).findings for i in items]
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(command, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(command)
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    batch = [r.findings for r in shield.scan_many(items)]
    assert batch == single
    assert len(calls) == 1


def test_prescan_skips_semgrep_when_no_rule_can_match(shield: CodeShield, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("semgrep should not run")

    monkeypatch.setattr(subprocess, "run", fail_run)
    assert shield.scan_many([CodeItem(CLEAN, "python"), CodeItem(MD5, "python")])[0].findings == ()


def test_without_semgrep_regex_tier_works_and_says_tier_two_is_off() -> None:
    regex_only = CodeShield(rule_dirs=[FIXTURE_RULES], include_builtin_rules=False, semgrep=False)
    assert any("semgrep tier off" in note for note in regex_only.status.notes)
    assert regex_only.scan(MD5, "python").findings
    assert not regex_only.scan(SHELL, "python").findings


def test_treatment_is_configurable(shield: CodeShield) -> None:
    strict = CodeShield(semgrep=False, ruleset=shield.ruleset, treatment={"warning": "block"})
    assert strict.scan(MD5, "python").treatment is Treatment.BLOCK
    relaxed = CodeShield(semgrep=False, ruleset=shield.ruleset, treatment={Severity.WARNING: Treatment.IGNORE})
    result = relaxed.scan(MD5, "python")
    assert result.findings and result.treatment is Treatment.IGNORE


def test_code_shield_is_a_detector(shield: CodeShield) -> None:
    assert isinstance(shield, Detector)
    reply = f"Here you go:\n```python\n{SHELL}```\nand a safe one:\n```py\n{CLEAN}```\n"
    verdict = shield.check([Message("user", "write code"), Message("assistant", reply)])
    assert verdict.decision is Decision.HUMAN_REVIEW
    assert verdict.labels == ("CWE-78",) and verdict.score == pytest.approx(0.7)
    assert verdict.findings[0].line == 4
    clean = asyncio.run(shield.acheck([Message("assistant", f"```python\n{CLEAN}```")]))
    assert clean.decision is Decision.ALLOW and clean.score == 0.0


def test_check_many_keeps_conversations_apart(shield: CodeShield) -> None:
    verdicts = shield.check_many([[Message("assistant", MD5)], [Message("assistant", CLEAN)], []])
    assert [v.decision for v in verdicts] == [Decision.HUMAN_REVIEW, Decision.ALLOW, Decision.ALLOW]


def test_extract_code_blocks_uses_fence_tags() -> None:
    blocks = extract_code_blocks("text\n```js\nlet a = 1\n```\n```\nplain\n```")
    assert [(b.language, b.code) for b in blocks] == [("javascript", "let a = 1\n"), (None, "plain\n")]
    assert extract_code_blocks("no fences") == [CodeItem("no fences")]


def test_extract_code_blocks_edge_cases() -> None:
    # an unclosed block runs to the end; a tag line's tail is not part of the tag; empty blocks are skipped
    assert [(b.language, b.code) for b in extract_code_blocks("```py title\nx = 1\n")] == [("python", "x = 1\n")]
    assert extract_code_blocks("```\n\n```\n```c\nint a;\n```") == [CodeItem("int a;\n", "c")]
    # a run of fences with no newline opens no block (a backtracking pattern took seconds on 120 kB of this)
    evil = "```" * 40_000
    assert extract_code_blocks(evil) == [CodeItem(evil)]
    assert extract_code_blocks("```x```\ny```") == [CodeItem("y", None)]


def test_hostile_input_is_handled(shield: CodeShield) -> None:
    """Pathological text for backtracking engines, very long lines and binary junk scan without error."""
    evil = "(" * 200_000 + "a" * 200_000 + "\x00\xff" + "subprocess.call(" * 5_000
    result = shield.scan(evil, "python")
    assert result.language == "python"
    huge = "x = 1\n" * 300_000 + "hashlib.md5(p)\n"
    assert any(f.cwe == "CWE-328" for f in shield.scan(huge, "python").findings)


def test_custom_rules_add_and_replace(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(
        """
rules:
  - id: test.weak-hash
    cwe: CWE-327
    severity: error
    message: replaced rule
    languages: [python]
    regex: 'hashlib\\.md5\\('
    examples: {positive: "hashlib.md5(x)", negative: "hashlib.sha256(x)"}
  - id: custom.no-print
    cwe: CWE-532
    severity: advice
    message: do not print secrets
    languages: [python]
    regex: '\\bprint\\(\\s*secret'
    examples: {positive: "print(secret)", negative: "print(x)"}
"""
    )
    shield = CodeShield(rule_dirs=[FIXTURE_RULES, tmp_path], include_builtin_rules=False, semgrep=False)
    found = {f.rule_id: f for f in shield.scan(MD5 + "print(secret)\n", "python").findings}
    assert found["test.weak-hash"].message == "replaced rule"
    assert found["test.weak-hash"].severity is Severity.ERROR
    assert found["custom.no-print"].line == 5
    with_builtin = CodeShield(rule_dirs=[tmp_path], semgrep=False)
    assert "custom.no-print" in {r.id for r in with_builtin.ruleset.all}
    assert len(with_builtin.ruleset.all) > 100


def test_broken_rules_are_reported_and_the_rest_load(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        """
rules:
  - id: broken.lookahead
    cwe: CWE-1
    severity: warning
    message: uses a lookahead RE2 cannot run
    languages: [python]
    regex: 'foo(?=bar)'
    examples: {positive: "foobar", negative: "foo"}
  - id: broken.no-cwe
    severity: warning
    message: no cwe
    languages: [python]
    regex: 'x'
    examples: {positive: "x", negative: "y"}
"""
    )
    (tmp_path / "invalid.yaml").write_text("rules:\n  - id: [unclosed\n")
    ruleset = load_rules([tmp_path])
    assert any("broken.lookahead" in e and "not a valid RE2 pattern" in e for e in ruleset.errors)
    assert any("broken.no-cwe" in e and "CWE" in e for e in ruleset.errors)
    assert any("invalid.yaml" in e and "line" in e for e in ruleset.errors)
    assert len(ruleset.errors) == 3
    assert len(ruleset.regex) > 0  # the built-in rules still loaded


def test_invalid_semgrep_rule_is_named_and_the_others_still_run(tmp_path: Path) -> None:
    (tmp_path / "bad_semgrep.yaml").write_text(
        """
rules:
  - id: custom.unparsable
    languages: [python]
    severity: WARNING
    message: pattern semgrep cannot parse
    pattern: "foo(((("
    metadata:
      cwe: CWE-1
      prescan: 'subprocess'
      examples: {positive: "x", negative: "y"}
"""
    )
    shield = CodeShield(rule_dirs=[FIXTURE_RULES, tmp_path], include_builtin_rules=False, semgrep=True)
    first = shield.scan(SHELL, "python")
    assert [f.rule_id for f in first.findings] == ["test.shell-true"]
    assert any("custom.unparsable is invalid and was skipped" in note for note in first.notes)
    again = shield.scan(SHELL, "python")  # the broken rule is remembered, not retried
    assert again.findings == first.findings and not any("invalid" in n for n in again.notes)


def test_regex_not_stays_linear_on_many_matches_per_line(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        """
rules:
  - id: custom.exec
    cwe: CWE-78
    severity: warning
    message: exec
    languages: [java]
    regex: 'exec\\('
    regex-not: 'exec\\("'
    examples: {positive: "exec(x)", negative: 'exec("ls")'}
"""
    )
    shield = CodeShield(rule_dirs=[tmp_path], include_builtin_rules=False, semgrep=False)
    line = "Runtime.getRuntime().exec(x " * 20_000 + ' exec("a")'
    assert shield.scan(line, "java").findings == ()  # suppressed once per line, not re-tested per match
    assert [f.line for f in shield.scan("exec(a)\n" + line + "\nexec(b)\n", "java").findings] == [1, 3]
