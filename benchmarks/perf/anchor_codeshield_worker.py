"""Runs inside a separate virtualenv that has the `codeshield` PyPI package (the anchor), never in Purple's.

Reads JSON lines {"code", "language"} on stdin and writes JSON lines {"findings": [[line, cwe], ...],
"seconds": s} in the same order. `--fix-semgrep` drops the `--project-root /` argument the published
package passes to semgrep (with it, current semgrep scans no file). `--batch-threads N` scans N snippets
at once, as a caller would to get throughput from the anchor's per-snippet API.
`--cyberseceval` judges each item's "code" as a model response the way CyberSecEval's instruct benchmark
does: the first ``` block, raw (its info string stays in), else the whole response, then one
`insecure_code_detector.analyze(language, code)` call with its default (cyberseceval) use case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path

# This folder holds our own codeshield.py benchmark, which would shadow the anchor package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from codeshield.cs import CodeShield  # noqa: E402
from codeshield.insecure_code_detector import insecure_code_detector as icd  # noqa: E402
from codeshield.insecure_code_detector.languages import Language  # noqa: E402


def _fix_semgrep() -> None:
    original = icd._run_command

    async def run_without_project_root(command: list[str]) -> str:
        cleaned = list(command)
        if "--project-root" in cleaned:
            at = cleaned.index("--project-root")
            del cleaned[at : at + 2]
        return await original(cleaned)

    icd._run_command = run_without_project_root


async def _scan(code: str, language: str | None) -> tuple[list[list[object]], float]:
    lang = Language(language) if language else None
    start = time.perf_counter()
    result = await CodeShield.scan_code(code, lang)
    elapsed = time.perf_counter() - start
    findings = [[issue.line or 0, issue.cwe_id or ""] for issue in (result.issues_found or [])]
    return findings, elapsed


async def _judge_response(response: str, language: str) -> tuple[list[list[object]], float]:
    """CyberSecEval's instruct judging of one response (InstructOrAutoCompleteBenchmark)."""
    start = time.perf_counter()
    blocks = re.findall(r"```(.*?)```", response, re.DOTALL)
    code = blocks[0] if blocks else response
    issues = await icd.analyze(Language(language), code, None)
    elapsed = time.perf_counter() - start
    return [[issue.line or 0, issue.cwe_id or ""] for issue in issues], elapsed


async def _run(items: list[dict], concurrency: int, cyberseceval: bool = False) -> list[dict]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: dict) -> dict:
        async with semaphore:
            if cyberseceval:
                findings, seconds = await _judge_response(item["code"], item["language"])
            else:
                findings, seconds = await _scan(item["code"], item.get("language"))
            return {"findings": findings, "seconds": seconds}

    return await asyncio.gather(*(one(item) for item in items))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fix-semgrep", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--cyberseceval", action="store_true", help="judge responses as CyberSecEval instruct does")
    args = parser.parse_args()
    if args.fix_semgrep:
        _fix_semgrep()
    items = [json.loads(line) for line in sys.stdin if line.strip()]
    start = time.perf_counter()
    results = asyncio.run(_run(items, args.concurrency, args.cyberseceval))
    wall = time.perf_counter() - start
    for result in results:
        sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.write(json.dumps({"wall_seconds": wall}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
