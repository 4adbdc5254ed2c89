"""Tier 2: semgrep rules, one semgrep process per batch, skipped when no rule's prescan regex matches.

Every snippet is written to a private temporary folder under a neutral name (never inside a git work tree,
never under a path semgrep ignores by default) and semgrep is given that folder; the JSON it returns lists
the files it really scanned, and a file it did not scan is reported instead of silently passing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import re2
import yaml

from purple.codeshield.regex_tier import LineIndex, clip
from purple.codeshield.rules import RE2_OPTIONS, SemgrepRule
from purple.types import Finding

FAILURE_NOTES = ("semgrep tier timed out", "semgrep tier could not start", "semgrep tier failed", "semgrep rule ")
"""How the notes begin that say the semgrep tier did not do all its work (its findings, or a rule's, are missing)."""

SUFFIX = {
    "c": ".c",
    "cpp": ".cpp",
    "csharp": ".cs",
    "go": ".go",
    "java": ".java",
    "javascript": ".js",
    "typescript": ".ts",
    "kotlin": ".kt",
    "php": ".php",
    "python": ".py",
    "ruby": ".rb",
    "rust": ".rs",
    "swift": ".swift",
}


def _error_kind(error: dict) -> str:
    kind = error.get("type")
    return str(kind[0] if isinstance(kind, list) and kind else kind)


def find_semgrep() -> str | None:
    """The semgrep executable: next to this Python (a virtualenv) first, then on PATH."""
    beside = Path(sys.executable).with_name("semgrep")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("semgrep")


class _PlainDumper(yaml.SafeDumper):
    """Writes shared YAML nodes out in full: semgrep rejects anchors and aliases in generated configs."""

    def ignore_aliases(self, data: object) -> bool:
        return True


_UNPARSED_ERRORS = {"Syntax error", "Other syntax error", "Lexical error"}
"""Semgrep could not parse the file at all: it scanned nothing there (the regex tier still did)."""


@dataclass
class SemgrepBatchResult:
    findings: list[list[Finding]]
    ran: bool
    notes: list[str] = field(default_factory=list)
    """Notes about the whole run (an invalid rule, a time-out)."""
    item_notes: dict[int, list[str]] = field(default_factory=dict)
    """Notes about single items (a file semgrep did not scan)."""


_RULE_PARSE_ERROR = re.compile(r"in rule ([\w.\-/]+)")


@dataclass(frozen=True)
class _Target:
    index: int
    code: str
    language: str
    path: str | None
    line_offset: int

    @property
    def file_name(self) -> str:
        return f"snippet{self.index}{SUFFIX[self.language]}"


class SemgrepTier:
    """Runs the semgrep rules over many snippets with a single semgrep process."""

    def __init__(
        self,
        rules: Sequence[SemgrepRule],
        timeout_s: float = 120.0,
        per_file_timeout_s: int = 10,
        executable: str | None = None,
    ) -> None:
        self.rules = list(rules)
        self.timeout_s = timeout_s
        self.per_file_timeout_s = per_file_timeout_s
        self.executable = executable if executable is not None else find_semgrep()
        self._prescans = [re2.compile(rule.prescan, RE2_OPTIONS) for rule in self.rules]
        self._by_id = {rule.id: rule for rule in self.rules}
        self._broken: set[int] = set()
        self._by_language: dict[str, list[int]] = {}
        for i, rule in enumerate(self.rules):
            for language in rule.languages:
                self._by_language.setdefault(language, []).append(i)

    @property
    def available(self) -> bool:
        return self.executable is not None

    def candidate_rules(self, code: str, language: str) -> list[int]:
        """Indices of the rules for `language` whose prescan regex matches `code` (encoded once)."""
        data = code.encode("utf-8", errors="replace")
        return [i for i in self._by_language.get(language, ()) if self._prescans[i].search(data)]

    def refused_rules(self, code: str, language: str | None) -> list[str]:
        """Ids of the rules semgrep refused in an earlier batch (now skipped) that would have scanned `code`."""
        if not self._broken or not self.available or language not in SUFFIX:
            return []
        return [self.rules[i].id for i in self.candidate_rules(code, language) if i in self._broken]

    def scan_batch(self, items: Sequence[tuple[str, str | None, str | None]]) -> SemgrepBatchResult:
        """Scan (code, language, display path) items; findings are returned per item, in order."""
        findings: list[list[Finding]] = [[] for _ in items]
        if not self.available or not self.rules:
            return SemgrepBatchResult(findings, ran=False)
        files_per_rule: dict[int, list[str]] = {}
        targets: list[_Target] = []
        for index, (code, language, path) in enumerate(items):
            if language not in SUFFIX:
                continue
            candidates = [i for i in self.candidate_rules(code, language) if i not in self._broken]
            if not candidates:
                continue
            offset = 0
            if language == "php" and "<?php" not in code[:200]:
                code, offset = "<?php\n" + code, 1
            target = _Target(index, code, language, path, offset)
            targets.append(target)
            for rule_index in candidates:
                files_per_rule.setdefault(rule_index, []).append(target.file_name)
        if not targets:
            return SemgrepBatchResult(findings, ran=False)
        result = SemgrepBatchResult(findings, ran=True)
        report = self._run(targets, files_per_rule, result)
        broken = self._broken_rules(report) if report else {}
        if broken:
            # An invalid rule makes semgrep drop the whole configuration: say which, then run without it.
            for index, detail in broken.items():
                self._broken.add(index)
                result.notes.append(f"semgrep rule {self.rules[index].id} is invalid and was skipped: {detail}")
                files_per_rule.pop(index, None)
            report = self._run(targets, files_per_rule, result) if files_per_rule else None
        if report:
            self._collect(report, {t.file_name: t for t in targets}, result)
        return result

    def _run(
        self, targets: list[_Target], files_per_rule: dict[int, list[str]], result: SemgrepBatchResult
    ) -> dict | None:
        """One semgrep process over all targets; each rule limited to the files its prescan matched."""
        bodies = [
            {**self.rules[i].body, "paths": {"include": [f"/{name}" for name in names]}}
            for i, names in sorted(files_per_rule.items())
        ]
        with tempfile.TemporaryDirectory(prefix="purple-semgrep-") as tmp:
            root = Path(tmp)
            src = root / "src"
            src.mkdir()
            for target in targets:
                (src / target.file_name).write_text(target.code, encoding="utf-8", errors="replace")
            config = root / "rules.yaml"
            config.write_text(yaml.dump({"rules": bodies}, Dumper=_PlainDumper, sort_keys=False))
            command = [
                str(self.executable), "--experimental", "--config", str(config), "--json", "--quiet",
                "--metrics", "off", "--disable-version-check", "--no-git-ignore",
                "--timeout", str(self.per_file_timeout_s), "--jobs", str(max(1, os.cpu_count() or 1)),
                str(src),
            ]
            env = {**os.environ, "SEMGREP_SEND_METRICS": "off", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
            try:
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=self.timeout_s, env=env, cwd=root
                )
            except subprocess.TimeoutExpired:
                result.notes.append(f"semgrep tier timed out after {self.timeout_s:.0f} s; its findings are missing")
                return None
            except OSError as exc:
                result.notes.append(f"semgrep tier could not start: {exc}")
                return None
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            result.notes.append(f"semgrep tier failed (exit {proc.returncode}): {tail[0][:300]}")
            return None

    def _broken_rules(self, report: dict) -> dict[int, str]:
        """Rules semgrep rejected, by index, with the first line of semgrep's complaint."""
        broken: dict[int, str] = {}
        for error in report.get("errors", []):
            if _error_kind(error) != "Rule parse error":
                continue
            lines = str(error.get("message", "")).strip().splitlines()
            found = _RULE_PARSE_ERROR.search(lines[0] if lines else "")
            rule_id = str(error.get("rule_id") or (found.group(1) if found else ""))
            rule = self._rule_for(rule_id) if rule_id else None
            if rule is not None:
                detail = next((line.strip() for line in lines[1:] if line.strip()), "rule rejected")
                broken[self.rules.index(rule)] = detail[:200]
        return broken

    def _collect(self, report: dict, by_name: dict[str, _Target], result: SemgrepBatchResult) -> None:
        scanned = {Path(p).name for p in report.get("paths", {}).get("scanned", [])}
        for name in sorted(set(by_name) - scanned):
            result.item_notes.setdefault(by_name[name].index, []).append(
                "semgrep did not scan this input; only the regex tier's findings are reported"
            )
        timeouts = 0
        for error in report.get("errors", []):
            kind = _error_kind(error)
            if kind == "PartialParsing":
                continue  # snippets are often fragments; semgrep recovered and scanned what it could parse
            if kind in _UNPARSED_ERRORS:
                target = by_name.get(Path(str(error.get("path", ""))).name)
                if target is not None:
                    result.item_notes.setdefault(target.index, []).append(
                        "semgrep could not parse this input; only the regex tier's findings are reported"
                    )
                continue
            if "Timeout" in kind or "OutOfMemory" in kind:
                timeouts += 1
                continue
            message = f"semgrep: {str(error.get('message', kind)).strip().splitlines()[0][:300]}"
            if message not in result.notes:
                result.notes.append(message)
        if timeouts:
            result.notes.append(
                f"semgrep hit its per-file time or memory limit on {timeouts} file(s); findings there may be missing"
            )
        indexes: dict[str, LineIndex] = {}
        seen: set[tuple[str, str, int]] = set()
        for match in report.get("results", []):
            name = Path(match.get("path", "")).name
            target = by_name.get(name)
            rule = self._rule_for(match.get("check_id", ""))
            if target is None or rule is None:
                continue
            line = int(match["start"]["line"])
            key = (name, rule.id, line)
            if key in seen:
                continue
            seen.add(key)
            index = indexes.setdefault(name, LineIndex(target.code))
            result.findings[target.index].append(
                Finding(
                    rule_id=rule.id,
                    cwe=rule.cwe,
                    severity=rule.severity,
                    message=rule.message,
                    line=line - target.line_offset,
                    column=int(match["start"].get("col", 1)),
                    snippet=clip(index.line_text(line)),
                    language=target.language,
                    path=target.path,
                    tier="semgrep",
                    end_line=int(match.get("end", {}).get("line", line)) - target.line_offset,
                )
            )

    def _rule_for(self, check_id: str) -> SemgrepRule | None:
        rule = self._by_id.get(check_id)
        if rule is not None:
            return rule
        # Semgrep may prefix ids with the config's dotted path.
        for rule_id, candidate in self._by_id.items():
            if check_id.endswith("." + rule_id):
                return candidate
        return None
