"""Tier 1: RE2 rules, linear time on hostile input, comment-aware, one pre-filter pass per language."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import re2

from purple.codeshield.comments import strip_comments
from purple.codeshield.languages import ANY
from purple.codeshield.rules import RE2_OPTIONS, RegexRule
from purple.types import Finding

MAX_FINDINGS_PER_RULE = 50
MAX_MATCHES_PER_RULE = 2_000
"""Bound on matches examined per rule and text, so one hostile line repeating a pattern stays cheap."""
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class _CompiledRule:
    rule: RegexRule
    regex: re2._Regexp
    regex_not: re2._Regexp | None


class _LanguageRules:
    """The rules of one language, with an RE2 set that finds in one pass which rules can match."""

    def __init__(self, rules: Sequence[RegexRule]) -> None:
        self.rules = [
            _CompiledRule(
                rule,
                re2.compile(rule.regex, RE2_OPTIONS),
                re2.compile(rule.regex_not, RE2_OPTIONS) if rule.regex_not else None,
            )
            for rule in rules
        ]
        self._set: re2.Set | None = None
        if self.rules:
            prefilter = re2.Set.SearchSet(RE2_OPTIONS)
            for compiled in self.rules:
                prefilter.Add(compiled.rule.regex)
            prefilter.Compile()
            self._set = prefilter

    def candidates(self, text: str) -> list[_CompiledRule]:
        if self._set is None:
            return []
        return [self.rules[i] for i in sorted(self._set.Match(text) or ())]


class LineIndex:
    """Offset -> (line, column) for one text, 1-based."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        find = text.find
        pos = find("\n")
        while pos >= 0:
            self.starts.append(pos + 1)
            pos = find("\n", pos + 1)

    def locate(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def line_span(self, line: int) -> tuple[int, int]:
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return start, end

    def line_text(self, line: int) -> str:
        start, end = self.line_span(line)
        return self.text[start:end]


def clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


class RegexTier:
    """Compiled regex rules for every language; `scan` returns findings for one text."""

    def __init__(self, rules: Sequence[RegexRule]) -> None:
        by_language: dict[str, list[RegexRule]] = {}
        for rule in rules:
            for language in rule.languages:
                by_language.setdefault(language, []).append(rule)
        self._agnostic = _LanguageRules(by_language.pop(ANY, []))
        self._languages = {lang: _LanguageRules(lang_rules) for lang, lang_rules in by_language.items()}

    def scan(self, code: str, language: str | None, path: str | None = None) -> list[Finding]:
        """Findings of the rules for `language` plus the language-agnostic ones (secrets)."""
        groups = [self._agnostic]
        if language and language in self._languages:
            groups.append(self._languages[language])
        stripped = strip_comments(code, language) if language else code
        index = LineIndex(code)
        findings: list[Finding] = []
        for group in groups:
            for compiled in group.candidates(code):
                target = code if compiled.rule.in_comments else stripped
                findings.extend(self._matches(compiled, target, index, language or ANY, path))
        findings.sort(key=lambda f: (f.line, f.column, f.rule_id))
        return findings

    @staticmethod
    def _matches(
        compiled: _CompiledRule, target: str, index: LineIndex, language: str, path: str | None
    ) -> list[Finding]:
        rule = compiled.rule
        out: list[Finding] = []
        seen_lines: set[int] = set()
        for examined, match in enumerate(compiled.regex.finditer(target)):
            if examined >= MAX_MATCHES_PER_RULE:
                break
            # Report the first non-blank character of the match, so a pattern that starts with \s lands right.
            offset = match.start()
            end = match.end()
            while offset < end and target[offset] in " \t\r\n":
                offset += 1
            line, column = index.locate(offset)
            if line in seen_lines:
                continue
            seen_lines.add(line)  # one finding per rule and line; `regex-not` depends on the line only
            if compiled.regex_not is not None:
                start, stop = index.line_span(line)  # `target` has the same line breaks as the code
                if compiled.regex_not.search(target[start:stop]):
                    continue
            end_line, _ = index.locate(max(offset, end - 1))
            out.append(
                Finding(
                    rule_id=rule.id,
                    cwe=rule.cwe,
                    severity=rule.severity,
                    message=rule.message,
                    line=line,
                    column=column,
                    snippet=clip(index.line_text(line)),
                    language=language,
                    path=path,
                    tier="regex",
                    end_line=end_line,
                )
            )
            if len(out) >= MAX_FINDINGS_PER_RULE:
                break
        return out
