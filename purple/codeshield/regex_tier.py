"""Tier 1: RE2 rules, linear time on hostile input, comment-aware, one pre-filter pass per language.

The text is encoded to UTF-8 once per scan and every rule runs on those bytes (RE2's native form), so
the cost per rule does not include re-encoding the text. Each rule reports at most one finding per line
and resumes its search at the next line, which bounds the work on hostile inputs that repeat a pattern.
"""

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
SNIPPET_CHARS = 240
_BLANK = b" \t\r\n"


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

    def candidates(self, data: bytes) -> list[_CompiledRule]:
        if self._set is None:
            return []
        return [self.rules[i] for i in sorted(self._set.Match(data) or ())]


class LineIndex:
    """Offset -> line for one text (str or bytes), lines 1-based."""

    def __init__(self, text: str | bytes) -> None:
        self.text = text
        newline = "\n" if isinstance(text, str) else b"\n"
        self.starts = [0]
        find = text.find
        pos = find(newline)  # type: ignore[arg-type]
        while pos >= 0:
            self.starts.append(pos + 1)
            pos = find(newline, pos + 1)  # type: ignore[arg-type]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def line_span(self, line: int) -> tuple[int, int]:
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return start, end

    def next_line_start(self, line: int) -> int:
        return self.starts[line] if line < len(self.starts) else len(self.text) + 1

    def line_text(self, line: int) -> str | bytes:
        start, end = self.line_span(line)
        return self.text[start:end]


def clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= SNIPPET_CHARS else line[: SNIPPET_CHARS - 1] + "…"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="replace")


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
        raw = _utf8(code)
        stripped_text = strip_comments(code, language) if language else code
        stripped = raw if stripped_text is code else _utf8(stripped_text)
        raw_index = LineIndex(raw)
        stripped_index = raw_index if stripped is raw else LineIndex(stripped)
        findings: list[Finding] = []
        for group in groups:
            for compiled in group.candidates(raw):
                if compiled.rule.in_comments:
                    target, index = raw, raw_index
                else:
                    target, index = stripped, stripped_index
                findings.extend(self._matches(compiled, target, index, raw_index, language or ANY, path))
        findings.sort(key=lambda f: (f.line, f.column, f.rule_id))
        return findings

    @staticmethod
    def _matches(
        compiled: _CompiledRule,
        target: bytes,
        index: LineIndex,
        raw_index: LineIndex,
        language: str,
        path: str | None,
    ) -> list[Finding]:
        rule = compiled.rule
        out: list[Finding] = []
        pos = 0
        while pos <= len(target) and len(out) < MAX_FINDINGS_PER_RULE:
            match = compiled.regex.search(target, pos)
            if match is None:
                break
            # Report the first non-blank byte of the match, so a pattern that starts with \s lands right.
            offset, end = match.start(), match.end()
            while offset < end and target[offset] in _BLANK:
                offset += 1
            line = index.line_of(offset)
            pos = index.next_line_start(line)  # one finding per rule and line
            line_start, line_end = index.line_span(line)
            if compiled.regex_not is not None and compiled.regex_not.search(target[line_start:line_end]):
                continue
            column = len(target[line_start:offset].decode("utf-8", errors="replace")) + 1
            snippet = raw_index.line_text(line)
            out.append(
                Finding(
                    rule_id=rule.id,
                    cwe=rule.cwe,
                    severity=rule.severity,
                    message=rule.message,
                    line=line,
                    column=column,
                    snippet=clip(snippet.decode("utf-8", errors="replace")),  # type: ignore[union-attr]
                    language=language,
                    path=path,
                    tier="regex",
                    end_line=index.line_of(max(offset, end - 1)),
                )
            )
        return out
