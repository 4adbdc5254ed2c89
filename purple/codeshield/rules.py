"""Code Shield rules: loading and validating the YAML files under `rules/` (and user rule folders).

Both tiers share the shape of a semgrep rule file: a top-level `rules:` list whose entries have
`id`, `message`, `severity`, `languages` and CWE metadata. An entry with a `regex` key is a regex-tier
rule; any other entry is a semgrep rule and must carry `metadata.prescan`, an RE2 pattern that matches
whenever the rule could match (so semgrep is skipped when nothing can fire). Every rule carries
`examples.positive` / `examples.negative` (under `metadata` for semgrep rules) that the tests run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import re2
import yaml

from purple.codeshield.languages import ANY, normalize_language
from purple.resources import data_dir
from purple.types import Severity

_SEVERITY_NAMES = {
    "error": Severity.ERROR,
    "warning": Severity.WARNING,
    "advice": Severity.ADVICE,
    "info": Severity.ADVICE,
    "note": Severity.ADVICE,
}
_SEMGREP_LANGUAGE_NAMES = {"javascript": "js", "typescript": "ts", "csharp": "csharp"}
_MAX_PATTERN_CHARS = 4_000
RE2_OPTIONS = re2.Options()
RE2_OPTIONS.max_mem = 64 << 20


class RuleError(ValueError):
    """A rule file or rule that cannot be used; the message names the file and the rule."""


@dataclass(frozen=True)
class RuleExamples:
    positive: str
    negative: str


@dataclass(frozen=True)
class Rule:
    """Fields shared by both tiers."""

    id: str
    cwe: str
    severity: Severity
    message: str
    languages: tuple[str, ...]
    examples: RuleExamples
    source: Path


@dataclass(frozen=True)
class RegexRule(Rule):
    regex: str = ""
    regex_not: str | None = None
    in_comments: bool = False


@dataclass(frozen=True)
class SemgrepRule(Rule):
    prescan: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    """The rule as semgrep reads it."""


@dataclass
class RuleSet:
    regex: list[RegexRule] = field(default_factory=list)
    semgrep: list[SemgrepRule] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Rule]:
        return [*self.regex, *self.semgrep]

    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.all}


def _compile(pattern: Any, what: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise RuleError(f"{what} must be a non-empty string")
    if len(pattern) > _MAX_PATTERN_CHARS:
        raise RuleError(f"{what} is longer than {_MAX_PATTERN_CHARS} characters")
    try:
        re2.compile(pattern, RE2_OPTIONS)
    except re2.error as exc:
        raise RuleError(f"{what} is not a valid RE2 pattern: {exc}") from None
    return pattern


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"missing or empty '{key}'")
    return value.strip()


def _cwe(value: Any) -> str:
    if isinstance(value, list) and value:
        value = value[0]
    text = str(value or "").strip().upper()
    if text.isdigit():
        text = f"CWE-{text}"
    head = text.split(":", 1)[0].strip()
    if not head.startswith("CWE-") or not head[4:].isdigit():
        raise RuleError(f"CWE must look like 'CWE-78', got {value!r}")
    return head


def _languages(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise RuleError("'languages' must be a non-empty list")
    try:
        return tuple(dict.fromkeys(normalize_language(str(v)) for v in value))
    except ValueError as exc:
        raise RuleError(str(exc)) from None


def _examples(value: Any) -> RuleExamples:
    if not isinstance(value, dict):
        raise RuleError("'examples' with 'positive' and 'negative' code is required")
    positive, negative = value.get("positive"), value.get("negative")
    if not isinstance(positive, str) or not isinstance(negative, str) or not positive.strip() or not negative.strip():
        raise RuleError("'examples' needs non-empty 'positive' and 'negative' code")
    return RuleExamples(positive=positive, negative=negative)


def _parse_regex_rule(entry: dict[str, Any], source: Path) -> RegexRule:
    severity = _SEVERITY_NAMES.get(str(entry.get("severity", "")).lower())
    if severity is None:
        raise RuleError("'severity' must be error, warning or advice")
    regex_not = entry.get("regex-not")
    return RegexRule(
        id=_text(entry, "id"),
        cwe=_cwe(entry.get("cwe")),
        severity=severity,
        message=_text(entry, "message"),
        languages=_languages(entry.get("languages")),
        examples=_examples(entry.get("examples")),
        source=source,
        regex=_compile(entry.get("regex"), "'regex'"),
        regex_not=_compile(regex_not, "'regex-not'") if regex_not is not None else None,
        in_comments=bool(entry.get("in-comments", False)),
    )


def _parse_semgrep_rule(entry: dict[str, Any], source: Path) -> SemgrepRule:
    metadata = entry.get("metadata")
    if not isinstance(metadata, dict):
        raise RuleError("semgrep rule needs 'metadata' with cwe, prescan and examples")
    severity = _SEVERITY_NAMES.get(str(entry.get("severity", "")).lower())
    if severity is None:
        raise RuleError("'severity' must be ERROR, WARNING or INFO")
    languages = _languages(entry.get("languages"))
    if ANY in languages:
        raise RuleError("semgrep rules need real languages; use a regex rule for language-agnostic checks")
    body = {key: value for key, value in entry.items() if key != "metadata"}
    body["languages"] = [_SEMGREP_LANGUAGE_NAMES.get(lang, lang) for lang in languages]
    body["metadata"] = {"cwe": _cwe(metadata.get("cwe"))}
    return SemgrepRule(
        id=_text(entry, "id"),
        cwe=_cwe(metadata.get("cwe")),
        severity=severity,
        message=_text(entry, "message"),
        languages=languages,
        examples=_examples(metadata.get("examples")),
        source=source,
        prescan=_compile(metadata.get("prescan"), "'metadata.prescan'"),
        body=body,
    )


def load_rule_file(path: Path) -> tuple[list[Rule], list[str]]:
    """Parse one YAML file; return its good rules and one error line per broken rule."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read rule file: {exc}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [], [f"{path}:{where}: invalid YAML: {problem}"]
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return [], [f"{path}: a rule file needs a top-level 'rules:' list"]
    rules: list[Rule] = []
    errors: list[str] = []
    for index, entry in enumerate(document["rules"]):
        label = entry.get("id", f"#{index + 1}") if isinstance(entry, dict) else f"#{index + 1}"
        try:
            if not isinstance(entry, dict):
                raise RuleError("a rule must be a mapping")
            rule = _parse_regex_rule(entry, path) if "regex" in entry else _parse_semgrep_rule(entry, path)
        except RuleError as exc:
            errors.append(f"{path}: rule {label}: {exc}")
            continue
        rules.append(rule)
    return rules, errors


def _rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


def load_rules(extra_dirs: Iterable[str | Path] = (), include_builtin: bool = True) -> RuleSet:
    """Load the built-in rules, then each extra folder; a later rule with the same id replaces the earlier."""
    folders: list[Path] = [data_dir("rules")] if include_builtin else []
    ruleset = RuleSet()
    for raw in extra_dirs:
        folder = Path(raw)
        if not folder.exists():
            ruleset.errors.append(f"{folder}: rules folder does not exist")
            continue
        folders.append(folder)
    chosen: dict[str, Rule] = {}
    for folder in folders:
        files = [folder] if folder.is_file() else _rule_files(folder)
        for path in files:
            rules, errors = load_rule_file(path)
            ruleset.errors.extend(errors)
            for rule in rules:
                chosen.pop(rule.id, None)
                chosen[rule.id] = rule
    for rule in chosen.values():
        if isinstance(rule, RegexRule):
            ruleset.regex.append(rule)
        elif isinstance(rule, SemgrepRule):
            ruleset.semgrep.append(rule)
    return ruleset
