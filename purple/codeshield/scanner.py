"""Code Shield: scan code (one snippet, a batch, or files) with both tiers and decide block / warn / ignore."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from purple.codeshield.languages import ANY, FENCE_TAGS, detect_language, language_from_path, normalize_language
from purple.codeshield.regex_tier import RegexTier
from purple.codeshield.rules import RuleSet, load_rules
from purple.codeshield.semgrep_tier import FAILURE_NOTES, SemgrepTier
from purple.codeshield.walk import DEFAULT_MAX_BYTES, Skipped, SourceFile, iter_sources
from purple.types import BatchDetector, Conversation, Decision, Finding, Severity, Verdict

MAX_SNIPPET_CHARS = 2_000_000


class Treatment(StrEnum):
    IGNORE = "ignore"
    WARN = "warn"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return ("ignore", "warn", "block").index(self.value)


DEFAULT_TREATMENT: dict[Severity, Treatment] = {
    Severity.ERROR: Treatment.BLOCK,
    Severity.WARNING: Treatment.WARN,
    Severity.ADVICE: Treatment.IGNORE,
}
_SEVERITY_SCORE = {Severity.ERROR: 1.0, Severity.WARNING: 0.7, Severity.ADVICE: 0.3}
_TREATMENT_DECISION = {
    Treatment.BLOCK: Decision.BLOCK,
    Treatment.WARN: Decision.HUMAN_REVIEW,
    Treatment.IGNORE: Decision.ALLOW,
}


@dataclass(frozen=True)
class CodeItem:
    """One piece of code to scan. `language` may be None (detected from `path`, then from the text)."""

    code: str
    language: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class ScanResult:
    findings: tuple[Finding, ...]
    treatment: Treatment
    language: str | None
    path: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_insecure(self) -> bool:
        return bool(self.findings)


@dataclass
class ScanStatus:
    """What the scanner could and could not do, to say once per run."""

    semgrep_available: bool
    notes: list[str] = field(default_factory=list)


_FENCE = "```"
_FENCE_TAG = re.compile(r"[ \t]*([\w+#.-]*)")


def extract_code_blocks(text: str) -> list[CodeItem]:
    """Fenced code blocks of a chat message with their tag's language; the whole text if there are none.

    A block opens with ``` and a tag line and runs to the next ``` or the end of the text. One pass over the text
    (a regular expression for this backtracked quadratically on a long run of fences with no newline)."""
    text_head = text[:MAX_SNIPPET_CHARS]
    blocks: list[CodeItem] = []
    position = 0
    while (opening := text_head.find(_FENCE, position)) >= 0:
        line_end = text_head.find("\n", opening)
        if line_end < 0:  # a fence with no line after it opens nothing, and neither can any later one
            break
        tag = _FENCE_TAG.match(text_head, opening + len(_FENCE), line_end)
        closing = text_head.find(_FENCE, line_end + 1)
        body = text_head[line_end + 1 : closing if closing >= 0 else len(text_head)]
        if body.strip():
            blocks.append(CodeItem(body, FENCE_TAGS.get(tag.group(1).lower() if tag else "")))
        if closing < 0:
            break
        position = closing + len(_FENCE)
    return blocks or [CodeItem(text)]


class CodeShield(BatchDetector):
    """The insecure-code scanner. Build once and reuse: rules compile at construction.

    `semgrep`: "auto" (use it when installed), True (require it), or False (regex tier only).
    `treatment`: severity -> treatment overrides (error blocks, warning warns, advice is ignored by default).
    """

    name = "code_shield"

    def __init__(
        self,
        rule_dirs: Iterable[str | Path] = (),
        include_builtin_rules: bool = True,
        semgrep: bool | str = "auto",
        treatment: Mapping[Severity | str, Treatment | str] | None = None,
        semgrep_timeout_s: float = 120.0,
        ruleset: RuleSet | None = None,
    ) -> None:
        self.ruleset = ruleset if ruleset is not None else load_rules(rule_dirs, include_builtin_rules)
        self.regex = RegexTier(self.ruleset.regex)
        self.semgrep = SemgrepTier(self.ruleset.semgrep, timeout_s=semgrep_timeout_s)
        if semgrep is False:
            self.semgrep.executable = None
        elif semgrep is True and not self.semgrep.available:
            raise RuntimeError("semgrep is not installed: install purple[semgrep] or pass semgrep=False")
        self.treatment = dict(DEFAULT_TREATMENT)
        for severity, value in (treatment or {}).items():
            self.treatment[Severity(severity)] = Treatment(value)

    @property
    def status(self) -> ScanStatus:
        notes = list(self.ruleset.errors)
        if not self.semgrep.available:
            notes.append("semgrep tier off: semgrep is not installed (pip install 'purple[semgrep]'); regex tier only")
        return ScanStatus(semgrep_available=self.semgrep.available, notes=notes)

    def resolve_language(self, item: CodeItem) -> str | None:
        if item.language:
            language = normalize_language(item.language)
            return None if language == ANY else language
        if item.path:
            by_path = language_from_path(item.path)
            if by_path == ANY:
                return None
            if by_path:
                return by_path
        return detect_language(item.code)

    def treatment_of(self, findings: Sequence[Finding]) -> Treatment:
        treatments = [self.treatment[f.severity] for f in findings]
        return max(treatments, key=lambda t: t.rank, default=Treatment.IGNORE)

    def scan(self, code: str, language: str | None = None, path: str | None = None) -> ScanResult:
        """Scan one snippet. `language` is optional: taken from `path`'s extension, else detected."""
        return self.scan_many([CodeItem(code, language, path)])[0]

    def scan_many(self, items: Sequence[CodeItem | str]) -> list[ScanResult]:
        """Scan a batch: the regex tier per item, then one semgrep process for every item that needs it."""
        normalized = [CodeItem(item) if isinstance(item, str) else item for item in items]
        languages: list[str | None] = []
        codes: list[str] = []
        notes: list[list[str]] = []
        for item in normalized:
            code = item.code
            item_notes = []
            if len(code) > MAX_SNIPPET_CHARS:
                code = code[:MAX_SNIPPET_CHARS]
                item_notes.append(f"input longer than {MAX_SNIPPET_CHARS} characters; scanned the first part only")
            codes.append(code)
            languages.append(self.resolve_language(item))
            notes.append(item_notes)
        findings = [
            self.regex.scan(code, language, item.path)
            for code, language, item in zip(codes, languages, normalized)
        ]
        batch = self.semgrep.scan_batch(
            [(code, language, item.path) for code, language, item in zip(codes, languages, normalized)]
        )
        results: list[ScanResult] = []
        for i, item in enumerate(normalized):
            merged = _merge(findings[i], batch.findings[i])
            results.append(
                ScanResult(
                    findings=tuple(merged),
                    treatment=self.treatment_of(merged),
                    language=languages[i],
                    path=item.path,
                    notes=tuple(notes[i] + batch.item_notes.get(i, []) + batch.notes),
                )
            )
        return results

    # Detector protocol -------------------------------------------------------------------------------
    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        """Scan the code in the last message of each conversation (fenced blocks, or the whole text)."""
        owners: list[int] = []
        items: list[CodeItem] = []
        for owner, conversation in enumerate(conversations):
            if not conversation:
                continue
            for block in extract_code_blocks(conversation[-1].content):
                owners.append(owner)
                items.append(block)
        per_conversation: list[list[Finding]] = [[] for _ in conversations]
        errors: list[list[str]] = [[] for _ in conversations]
        for owner, item, result in zip(owners, items, self.scan_many(items)):
            per_conversation[owner].extend(result.findings)
            # the rule `purple scan` uses: a semgrep run that timed out or failed, or a rule semgrep refused, means
            # findings may be missing: an error (the firewall's fail mode decides), never a clean verdict
            failures = [n for n in result.notes if n.startswith(FAILURE_NOTES)]
            failures += [  # a refused rule is skipped from then on: say so each time it would have run
                f"semgrep rule {rule_id} is invalid and was skipped (semgrep refused it earlier)"
                for rule_id in self.semgrep.refused_rules(item.code[:MAX_SNIPPET_CHARS], result.language)
                if not any(n.startswith(f"semgrep rule {rule_id} ") for n in failures)
            ]
            errors[owner].extend(failures)
        return [self._verdict(found, errs) for found, errs in zip(per_conversation, errors)]

    def _verdict(self, findings: list[Finding], errors: list[str]) -> Verdict:
        treatment = self.treatment_of(findings)
        score = max((_SEVERITY_SCORE[f.severity] for f in findings), default=0.0)
        labels = tuple(sorted({f.cwe for f in findings}, key=lambda c: int(c.split("-")[1])))
        if findings:
            shown = "; ".join(f"{f.cwe} line {f.line} ({f.rule_id})" for f in findings[:5])
            more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
            reason = f"{len(findings)} insecure pattern(s): {shown}{more}"
        else:
            reason = "no insecure code found"
        return Verdict(
            decision=_TREATMENT_DECISION[treatment],
            score=score,
            detector=self.name,
            labels=labels,
            reason=reason,
            findings=tuple(findings),
            error="; ".join(dict.fromkeys(errors)) or None,
        )


def _merge(regex_findings: list[Finding], semgrep_findings: list[Finding]) -> list[Finding]:
    """Both tiers' findings, one per (rule, line), ordered by position."""
    seen: set[tuple[str, int]] = set()
    merged: list[Finding] = []
    for finding in [*regex_findings, *semgrep_findings]:
        key = (finding.rule_id, finding.line)
        if key not in seen:
            seen.add(key)
            merged.append(finding)
    merged.sort(key=lambda f: (f.line, f.column, f.rule_id))
    return merged


@dataclass
class PathScan:
    """The outcome of scanning files: results for every file read, and what was skipped or failed."""

    results: list[ScanResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    file_notes: list[str] = field(default_factory=list)
    run_notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Skipped]:
        return [s for s in self.skipped if s.error]

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.results for f in r.findings]


def scan_paths(
    shield: CodeShield,
    paths: Sequence[str | Path],
    language: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    batch_size: int = 256,
    progress: Callable[[int], None] | None = None,
) -> PathScan:
    """Scan files and folders (folders honour .gitignore); one semgrep process per batch of files."""
    outcome = PathScan()
    batch: list[SourceFile] = []

    def flush() -> None:
        if not batch:
            return
        results = shield.scan_many([CodeItem(s.text, s.language, s.path) for s in batch])
        for result in results:
            outcome.results.append(result)
            outcome.run_notes.extend(n for n in result.notes if n not in outcome.run_notes)
        if progress:
            progress(len(batch))
        batch.clear()

    for source in iter_sources(paths, max_bytes=max_bytes, language=language):
        if isinstance(source, Skipped):
            outcome.skipped.append(source)
            continue
        if source.note:
            outcome.file_notes.append(f"{source.path}: {source.note}")
        batch.append(source)
        if len(batch) >= batch_size:
            flush()
    flush()
    return outcome
