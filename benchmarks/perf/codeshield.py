"""Code Shield against the anchor (`codeshield` 1.0.1 from PyPI) in the same run.

    python benchmarks/perf/codeshield.py [--datasets ../shared/datasets] [--corpus-files 150] [--out DIR]

Measures, for ours and for the anchor as published and with its semgrep call fixed:
- detection on the 1,916 CyberSecEval instruct `origin_code` snippets (finding within 2 lines of the
  labelled insecure line, or with the labelled CWE), overall and per language;
- false findings per 1,000 lines on clean code present on this machine (see clean_corpora.py);
- latency per snippet (p50, p99; ours also for the regex tier alone) and batch throughput.

The anchor runs in its own virtualenv (.bench/anchor, created here with pip on first use), never in
Purple's environment. Results go to benchmarks/perf/results/codeshield.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from clean_corpora import CORPUS_LANGUAGES, CleanFile, corpus  # noqa: E402
from instruct_detection import DEFAULT_DATASETS, InstructCase, is_detected, load_instruct, rates  # noqa: E402

ANCHOR_VENV = ROOT / ".bench" / "anchor"
ANCHOR_LANGUAGES = {"c", "cpp", "csharp", "java", "javascript", "php", "python", "rust"}


def ensure_anchor() -> Path:
    python = ANCHOR_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "codeshield==1.0.1"], check=True)
    return python


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def run_anchor(items: list[dict], fix_semgrep: bool, concurrency: int) -> tuple[list[dict], float]:
    python = ensure_anchor()
    args = [str(python), str(HERE / "anchor_codeshield_worker.py"), "--concurrency", str(concurrency)]
    if fix_semgrep:
        args.append("--fix-semgrep")
    payload = "".join(json.dumps(item) + "\n" for item in items)
    proc = subprocess.run(args, input=payload, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return rows[:-1], rows[-1]["wall_seconds"]


def measure_ours(cases: list[InstructCase], files: list[CleanFile]) -> dict:
    from purple.codeshield import CodeItem, CodeShield, Treatment

    shield = CodeShield()
    regex_only = CodeShield(semgrep=False, ruleset=shield.ruleset)
    items = [CodeItem(c.code, c.language) for c in cases]
    shield.scan_many(items[:20])  # warm caches (file system, semgrep binary) like the anchor's warm-up

    start = time.perf_counter()
    results = shield.scan_many(items)
    batch_wall = time.perf_counter() - start
    detected = [is_detected(c, [(f.line, f.cwe) for f in r.findings]) for c, r in zip(cases, results)]

    regex_passes: list[list[float]] = []
    for _ in range(3):
        timings = []
        for item in items:
            t0 = time.perf_counter()
            regex_only.scan(item.code, item.language)
            timings.append(time.perf_counter() - t0)
        regex_passes.append(timings)
    regex_latency = regex_passes[0]
    regex_best_of_3 = [min(values) for values in zip(*regex_passes)]
    full_latency = []
    for item in items:
        t0 = time.perf_counter()
        shield.scan(item.code, item.language)
        full_latency.append(time.perf_counter() - t0)

    clean = shield.scan_many([CodeItem(f.code, f.language, f.name) for f in files])
    false_findings = _false_findings(files, [len(r.findings) for r in clean])
    alarms = [sum(shield.treatment[f.severity] is not Treatment.IGNORE for f in r.findings) for r in clean]
    return {
        "detection": rates(cases, detected),
        "batch_seconds": batch_wall,
        "throughput": len(items) / batch_wall,
        "latency_full": full_latency,
        "latency_regex": regex_latency,
        "latency_regex_best_of_3": regex_best_of_3,
        "false_findings": false_findings,
        "false_alarms": _false_findings(files, alarms),
        "rules": {"regex": len(shield.ruleset.regex), "semgrep": len(shield.ruleset.semgrep)},
    }


def measure_anchor(cases: list[InstructCase], files: list[CleanFile], fix_semgrep: bool) -> dict:
    items = [{"code": c.code, "language": c.language} for c in cases]
    sequential, sequential_wall = run_anchor(items, fix_semgrep, concurrency=1)
    _, concurrent_wall = run_anchor(items, fix_semgrep, concurrency=8)
    detected = [is_detected(c, [tuple(f) for f in r["findings"]]) for c, r in zip(cases, sequential)]
    clean_items = [{"code": f.code, "language": f.language} for f in files]
    clean, _ = run_anchor(clean_items, fix_semgrep, concurrency=4)
    return {
        "detection": rates(cases, detected),
        "batch_seconds": min(sequential_wall, concurrent_wall),
        "throughput": len(items) / min(sequential_wall, concurrent_wall),
        "latency_full": [r["seconds"] for r in sequential],
        "false_findings": _false_findings(files, [len(r["findings"]) for r in clean]),
    }


def _false_findings(files: list[CleanFile], counts: list[int]) -> dict[str, tuple[int, int]]:
    table: dict[str, list[int]] = {}
    for file, count in zip(files, counts):
        for key in (file.language, "overall"):
            entry = table.setdefault(key, [0, 0])
            entry[0] += count
            entry[1] += file.lines
    return {k: (v[0], v[1]) for k, v in table.items()}


def _pct(pair: tuple[int, int] | list[int] | None) -> str:
    if not pair or not pair[1]:
        return "n/a"
    return f"{pair[0] / pair[1]:.1%} ({pair[0]}/{pair[1]})"


def _per_kloc(pair: tuple[int, int] | list[int] | None) -> str:
    if not pair or not pair[1]:
        return "n/a"
    return f"{1000 * pair[0] / pair[1]:.3f} ({pair[0]} in {pair[1]:,} lines)"


def render(report: dict) -> str:
    ours, published, fixed = report["ours"], report["anchor_published"], report["anchor_fixed"]
    lines = [
        "# Code Shield benchmark: Purple vs codeshield 1.0.1 (the anchor), same run",
        "",
        f"Machine: {report['machine']}. Semgrep {report['semgrep_version']}. Command: `{report['command']}`.",
        f"Purple rules: {ours['rules']['regex']} regex, {ours['rules']['semgrep']} semgrep.",
        "",
        "## Detection on CyberSecEval instruct origin_code (finding within 2 lines of the insecure line, or same CWE)",
        "",
        "| language | Purple | anchor as published | anchor, semgrep fixed | Purple / published |",
        "|---|---|---|---|---|",
    ]
    for language in sorted(ours["detection"], key=lambda k: (k == "overall", k)):
        o, p, f = ours["detection"][language], published["detection"].get(language), fixed["detection"].get(language)
        ratio = f"{(o[0] / o[1]) / (p[0] / p[1]):.1f}x" if p and p[0] else "inf"
        lines.append(f"| {language} | {_pct(o)} | {_pct(p)} | {_pct(f)} | {ratio} |")
    lines += [
        "",
        "## False findings per 1,000 lines of clean code",
        "",
        "| corpus | Purple, all findings | Purple, warn or block | anchor as published | anchor, semgrep fixed |",
        "|---|---|---|---|---|",
    ]
    for language in [*CORPUS_LANGUAGES, "overall"]:
        lines.append(
            f"| {language} | {_per_kloc(ours['false_findings'].get(language))} | "
            f"{_per_kloc(ours['false_alarms'].get(language))} | "
            f"{_per_kloc(published['false_findings'].get(language))} | {_per_kloc(fixed['false_findings'].get(language))} |"
        )
    lines += [
        "",
        "Every finding counts, though most are real uses of the flagged API in code assumed clean (eval in pdb,",
        "os.system in mailcap, strcpy in Xtrans). Purple's `advice` findings are reported with treatment `ignore`;",
        "the warn/block column leaves them out. Every anchor finding is warn or block.",
    ]
    lines += [
        "",
        f"## Speed ({report['snippets']:,} snippets)",
        "",
        "| | p50 per snippet | p99 per snippet | batch throughput (snippets/s) |",
        "|---|---|---|---|",
        f"| Purple, regex tier only | {1000 * percentile(ours['latency_regex'], 50):.2f} ms | "
        f"{1000 * percentile(ours['latency_regex'], 99):.2f} ms | |",
        f"| Purple, regex tier only, best of 3 per snippet | {1000 * percentile(ours['latency_regex_best_of_3'], 50):.2f} ms | "
        f"{1000 * percentile(ours['latency_regex_best_of_3'], 99):.2f} ms | |",
        f"| Purple, both tiers, one call per snippet | {1000 * percentile(ours['latency_full'], 50):.2f} ms | "
        f"{1000 * percentile(ours['latency_full'], 99):.2f} ms | |",
        f"| Purple, both tiers, one batch | | | {ours['throughput']:.1f} |",
        f"| anchor as published | {1000 * percentile(published['latency_full'], 50):.2f} ms | "
        f"{1000 * percentile(published['latency_full'], 99):.2f} ms | {published['throughput']:.1f} |",
        f"| anchor, semgrep fixed | {1000 * percentile(fixed['latency_full'], 50):.2f} ms | "
        f"{1000 * percentile(fixed['latency_full'], 99):.2f} ms | {fixed['throughput']:.1f} |",
        "",
        f"Batch throughput ratio, Purple / anchor as published: {ours['throughput'] / published['throughput']:.1f}x; "
        f"Purple / anchor with semgrep fixed: {ours['throughput'] / fixed['throughput']:.1f}x.",
        "The anchor's batch throughput is the better of sequential calls and 8 concurrent asyncio calls.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--corpus-files", type=int, default=150, help="clean files per corpus language")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--limit", type=int, default=0, help="take an even stride of this many snippets (quick runs)")
    args = parser.parse_args(argv)
    try:
        cases = load_instruct(args.datasets)
    except FileNotFoundError as exc:
        print(f"codeshield benchmark: dataset not found: {exc.filename} (use --datasets)", file=sys.stderr)
        return 2
    if args.limit and args.limit < len(cases):
        step = len(cases) / args.limit
        cases = [cases[int(i * step)] for i in range(args.limit)]
    files = [f for language in CORPUS_LANGUAGES for f in corpus(language, args.corpus_files)]
    print(f"{len(cases)} instruct snippets, {len(files)} clean files", file=sys.stderr)
    semgrep_version = subprocess.run(
        [str(Path(sys.executable).with_name("semgrep")), "--version"], capture_output=True, text=True
    ).stdout.strip()
    report = {
        "command": "python benchmarks/perf/codeshield.py " + " ".join(argv or sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.1f}",
        "semgrep_version": semgrep_version,
        "snippets": len(cases),
        "ours": measure_ours(cases, files),
        "anchor_published": measure_anchor(cases, files, fix_semgrep=False),
        "anchor_fixed": measure_anchor(cases, files, fix_semgrep=True),
    }
    text = render(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "codeshield.md").write_text(text, encoding="utf-8")
    summary = {
        key: {k: v for k, v in value.items() if not k.startswith("latency")} if isinstance(value, dict) else value
        for key, value in report.items()
    }
    for key in ("ours", "anchor_published", "anchor_fixed"):
        for name in ("latency_full", "latency_regex", "latency_regex_best_of_3"):
            if name in report[key]:
                summary[key][f"{name}_p50_ms"] = 1000 * statistics.median(report[key][name])
                summary[key][f"{name}_p99_ms"] = 1000 * percentile(report[key][name], 99)
    (args.out / "codeshield.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
