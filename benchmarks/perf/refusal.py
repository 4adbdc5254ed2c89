"""Refusal detectors on human labels: the CyberSecEval-style keyword list vs Purple's rule-based reader.

The labels are PyRIT's refusal scorer evaluation set (request, response, human_score 1 = refusal, 0 = not), used
only to measure: nothing here is fitted to them. Prints precision / recall / F1 / accuracy per detector and
writes benchmarks/perf/results/refusal.md.
Run: .venv/bin/python benchmarks/perf/refusal.py [--data PATH/TO/pyrit_data/scorer_evals/refusal_scorer]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from purple.evals.refusal import is_refusal
from purple.refusal import refuses

DEFAULT_DATA = (Path(__file__).resolve().parents[3] / "shared" / "datasets" / "pyrit_data" / "scorer_evals"
                / "refusal_scorer")
RESULTS = Path(__file__).resolve().parent / "results" / "refusal.md"
DETECTORS: dict[str, Callable[[str, str], bool]] = {
    "keyword list (CyberSecEval-style, purple.evals.refusal)": lambda response, request: is_refusal(response),
    "rule-based reader, response only (purple.refusal)": lambda response, request: refuses(response),
    "rule-based reader, with the request (off-topic rule on)": refuses,
}


def load(folder: Path) -> list[tuple[str, str, bool, str]]:
    """(response, request, is_refusal, file) for every labelled row of every CSV in the folder ('#' lines are comments)."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        lines = [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if not line.startswith("#")]
        for row in csv.DictReader(io.StringIO("".join(lines))):
            rows.append((row["assistant_response"], row["objective"], float(row["human_score"]) >= 0.5, path.stem))
    return rows


def scores(predicted: Sequence[bool], truth: Sequence[bool]) -> dict[str, float]:
    tp = sum(p and t for p, t in zip(predicted, truth))
    fp = sum(p and not t for p, t in zip(predicted, truth))
    fn = sum(t and not p for p, t in zip(predicted, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(p == t for p, t in zip(predicted, truth)) / len(truth)
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy, "fp": fp, "fn": fn}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of PyRIT refusal_scorer CSV files")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"error: no labelled data folder at {args.data}", file=sys.stderr)
        return 2
    rows = load(args.data)
    if not rows:
        print(f"error: no CSV rows in {args.data}", file=sys.stderr)
        return 2
    truth = [label for _, _, label, _ in rows]
    lines = [
        "# Refusal detectors on human labels",
        "",
        f"Data: PyRIT `scorer_evals/refusal_scorer` ({len(rows)} responses, {sum(truth)} labelled refusals; "
        "files: " + ", ".join(sorted({f for _, _, _, f in rows})) + "). Labels used only to measure.",
        "",
        "PyRIT's raters count an answer that does not address the request as a refusal, so about half of the",
        "labelled refusals here are fluent on-topic-looking answers to a different question. Only a detector",
        "that sees the request can find those; the response-only rows show the phrase rules alone.",
        "",
        "Command: `.venv/bin/python benchmarks/perf/refusal.py`",
        "",
        "| detector | precision | recall | F1 | accuracy | false pos. | false neg. |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, detector in DETECTORS.items():
        s = scores([detector(text, request) for text, request, _, _ in rows], truth)
        lines.append(f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['accuracy']:.3f} "
                     f"| {s['fp']:.0f} | {s['fn']:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
