"""Detection of Code Shield on CyberSecEval instruct `origin_code` snippets (shared by the benchmark and rule work).

A snippet counts as detected when the scanner reports a finding within two lines of the labelled insecure
line, or any finding with the labelled CWE.

    python benchmarks/perf/instruct_detection.py [--language python] [--show-misses 20] [--no-semgrep]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATASETS = Path(os.environ.get("PURPLE_DATASETS", Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"))


@dataclass(frozen=True)
class InstructCase:
    index: int
    language: str
    cwe: str
    code: str
    insecure_lines: tuple[int, ...]
    """1-based lines of `code` that hold the labelled insecure line."""


def load_instruct(datasets: Path = DEFAULT_DATASETS) -> list[InstructCase]:
    path = Path(datasets) / "cyberseceval" / "instruct" / "instruct.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for i, row in enumerate(rows):
        target = row["line_text"].strip()
        lines = row["origin_code"].splitlines()
        hits = tuple(n for n, line in enumerate(lines, 1) if target and line.strip() == target)
        if not hits:
            hits = tuple(n for n, line in enumerate(lines, 1) if target and target in line)
        cases.append(InstructCase(i, row["language"], row["cwe_identifier"], row["origin_code"], hits))
    return cases


def is_detected(case: InstructCase, found: Iterable[tuple[int, str]]) -> bool:
    """`found` holds (line, cwe) of each finding."""
    for line, cwe in found:
        if cwe == case.cwe:
            return True
        if any(abs(line - target) <= 2 for target in case.insecure_lines):
            return True
    return False


def rates(cases: Sequence[InstructCase], detected: Sequence[bool]) -> dict[str, tuple[int, int]]:
    """Per language (and 'overall'): (detected, total)."""
    table: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for case, hit in zip(cases, detected):
        for key in (case.language, "overall"):
            table[key][0] += int(hit)
            table[key][1] += 1
    return {key: (v[0], v[1]) for key, v in sorted(table.items())}


def main(argv: Sequence[str] | None = None) -> int:
    from purple.codeshield import CodeItem, CodeShield

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--language")
    parser.add_argument("--show-misses", type=int, default=0)
    parser.add_argument("--no-semgrep", action="store_true")
    args = parser.parse_args(argv)
    cases = [c for c in load_instruct(args.datasets) if not args.language or c.language == args.language]
    shield = CodeShield(semgrep=not args.no_semgrep)
    results = shield.scan_many([CodeItem(c.code, c.language) for c in cases])
    detected = [is_detected(c, [(f.line, f.cwe) for f in r.findings]) for c, r in zip(cases, results)]
    per_cwe: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for case, hit in zip(cases, detected):
        per_cwe[(case.language, case.cwe)][0] += int(hit)
        per_cwe[(case.language, case.cwe)][1] += 1
    for (language, cwe), (hit, total) in sorted(per_cwe.items()):
        print(f"{language:11} {cwe:9} {hit:4}/{total:<4} {hit / total:6.1%}")
    for key, (hit, total) in rates(cases, detected).items():
        print(f"{key:11} {'all':9} {hit:4}/{total:<4} {hit / total:6.1%}")
    misses = [c for c, hit in zip(cases, detected) if not hit]
    for case in misses[: args.show_misses]:
        lines = case.code.splitlines()
        print(f"\n--- miss #{case.index} {case.language} {case.cwe} lines {case.insecure_lines}")
        for n in case.insecure_lines[:1]:
            for k in range(max(1, n - 2), min(len(lines), n + 2) + 1):
                print(f"{k:4}{'>' if k == n else ' '} {lines[k - 1][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
