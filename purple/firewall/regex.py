"""The regex detector: your own RE2 patterns and the built-in secrets and PII sets, in one pass over the text.

Matched text never appears in a verdict (it may be a key or a card number): reasons and findings name the
pattern and where it matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import re2

from purple.firewall.patterns import BUILTIN, RegexPattern
from purple.firewall.policy import decide
from purple.types import BatchDetector, Conversation, Finding, Severity, Verdict

REVIEW_AT, BLOCK_AT = 0.5, 0.9
MAX_PATTERN_CHARS = 4_000
MAX_MATCHES_PER_PATTERN = 20
MAX_CANDIDATES_PER_PATTERN = 100_000
_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20
_OPTIONS.log_errors = False  # a bad user pattern is reported once, as a ValueError, not logged by RE2


def _pattern(value: RegexPattern | Mapping[str, Any], index: int) -> RegexPattern:
    if isinstance(value, RegexPattern):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"pattern {index + 1} must be a mapping with `name` and `pattern`")
    unknown = set(value) - {"name", "pattern", "score"}
    if unknown:
        raise ValueError(
            f"pattern {index + 1} has unknown key(s) {', '.join(sorted(unknown))} (name, pattern, score)"
        )
    name, pattern, score = value.get("name"), value.get("pattern"), value.get("score", 1.0)
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise ValueError(f"pattern {index + 1} needs a `name` (text, at most 100 characters)")
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern {name!r} needs a `pattern` (RE2, at most {MAX_PATTERN_CHARS} characters)")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
        raise ValueError(f"pattern {name!r}: score must be a number in [0, 1], got {score!r}")
    return RegexPattern(name.strip(), pattern, float(score))


class RegexDetector(BatchDetector):
    """Looks for patterns in the last message. `patterns` are yours ({name, pattern, score} or RegexPattern);
    `builtin` adds the named built-in sets ("secrets", "pii"). Own decision: block at 0.9, review at 0.5.
    """

    def __init__(
        self,
        patterns: Iterable[RegexPattern | Mapping[str, Any]] = (),
        builtin: Sequence[str] = (),
        name: str = "regex",
    ) -> None:
        self.name = name
        chosen: list[tuple[str, RegexPattern]] = []
        for family in builtin:
            if family not in BUILTIN:
                raise ValueError(f"unknown built-in pattern set {family!r}; known: {', '.join(BUILTIN)}")
            chosen.extend((family, p) for p in BUILTIN[family])
        chosen.extend((name, _pattern(p, i)) for i, p in enumerate(patterns))
        if not chosen:
            raise ValueError("a regex detector needs at least one pattern")
        self.patterns = chosen
        self._compiled = []
        self._set = re2.Set.SearchSet(_OPTIONS)
        for _, pattern in chosen:
            try:
                self._compiled.append(re2.compile(pattern.pattern, _OPTIONS))
                self._set.Add(pattern.pattern)
            except re2.error as exc:
                detail = (
                    exc.args[0].decode(errors="replace")
                    if exc.args and isinstance(exc.args[0], bytes)
                    else exc
                )
                raise ValueError(f"pattern {pattern.name!r} is not a valid RE2 pattern: {detail}") from None
        self._set.Compile()

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        return [self._check(c[-1].content if c else "") for c in conversations]

    def _check(self, text: str) -> Verdict:
        hits = sorted(self._set.Match(text) or ()) if text else []
        findings: list[Finding] = []
        score = 0.0
        parts: list[str] = []
        labels: list[str] = []
        for index in hits:
            family, pattern = self.patterns[index]
            positions = self._positions(index, pattern, text)
            if not positions:
                continue
            score = max(score, pattern.score)
            labels.append(pattern.name)
            line, column = line_column(text, positions[0])
            more = f" and {len(positions) - 1} more" if len(positions) > 1 else ""
            parts.append(f"{pattern.name} at line {line}, column {column}{more}")
            findings.extend(self._finding(family, pattern, text, at) for at in positions)
        if not parts:
            return Verdict(decide(0.0, REVIEW_AT, BLOCK_AT), 0.0, self.name, reason="no pattern matched")
        return Verdict(
            decide(score, REVIEW_AT, BLOCK_AT),
            score,
            self.name,
            labels=tuple(dict.fromkeys(labels)),
            reason="; ".join(parts),
            findings=tuple(findings),
        )

    def _positions(self, index: int, pattern: RegexPattern, text: str) -> list[int]:
        """Where the first few confirmed matches start (decoys that fail `check` cannot hide a later real one)."""
        found: list[int] = []
        for examined, match in enumerate(self._compiled[index].finditer(text)):
            if pattern.check is None or pattern.check(match.group()):
                found.append(match.start())
                if len(found) >= MAX_MATCHES_PER_PATTERN:
                    break
            if examined >= MAX_CANDIDATES_PER_PATTERN:
                break
        return found

    @staticmethod
    def _finding(family: str, pattern: RegexPattern, text: str, at: int) -> Finding:
        line, column = line_column(text, at)
        severity = (
            Severity.ERROR
            if pattern.score >= BLOCK_AT
            else (Severity.WARNING if pattern.score >= REVIEW_AT else Severity.ADVICE)
        )
        return Finding(
            rule_id=f"{family}.{pattern.name}",
            cwe=pattern.cwe,
            severity=severity,
            message=f"{pattern.name} found",
            line=line,
            column=column,
            snippet=f"<{pattern.name} redacted>",
            language="text",
        )


def line_column(text: str, at: int) -> tuple[int, int]:
    """1-based line and column of offset `at`."""
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
