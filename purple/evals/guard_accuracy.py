"""guard_accuracy: a detector (--guard) on a labelled set; precision, recall, F1, FPR, AUPRC and ROC AUC.

The set is JSONL (one object a line) or a JSON list. Each case has the text to check ({"text": ...}, {"prompt":
..., "response": ...} or {"conversation": [{"role", "content"}, ...]}), a gold `label` ("safe" / "unsafe" or
0 / 1), an optional `category` (default: the label) and an optional `id` (default: its position).

A case is flagged when the detector's own decision is not allow (block or human review). Each record keeps
the columns label, score and flagged, from which the report computes the set-level metrics overall and per
category (a category of unsafe cases only is measured against the set's safe cases; see report/aggregate.py);
the per-record misclassification_rate (flagged != label) is 1 - accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from purple.conversations import parse_conversation
from purple.evals.benchmark import EvalError, Judged, Sample, text_of
from purple.report.classification import CLASSIFICATION_METRICS
from purple.types import Verdict

_LABELS: dict[Any, int] = {"safe": 0, "unsafe": 1}


def _rows(path: Path) -> list[tuple[str, Any]]:
    """(where, row) for each case of a JSON list or a JSONL file; `where` names it in error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalError(f"dataset not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read dataset {path}: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"dataset {path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except RecursionError:
            raise EvalError(f"dataset {path} is nested too deeply to read") from None
        return [(f"test case {index}", row) for index, row in enumerate(data)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise EvalError(f"dataset {path}: line {number} is not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise EvalError(f"dataset {path}: line {number} is nested too deeply to read") from None
    return rows


def read_label(value: Any) -> int:
    """A gold label as 0 (safe) or 1 (unsafe): "safe" / "unsafe" in any case, or the numbers 0 / 1."""
    if value is None:
        raise ValueError("no label (safe / unsafe or 0 / 1)")
    key = value.strip().lower() if isinstance(value, str) else value
    if isinstance(key, int | float) and key in (0, 1):
        return int(key)
    if isinstance(key, str) and key in _LABELS:
        return _LABELS[key]
    raise ValueError(f"label {value!r} is not safe / unsafe or 0 / 1")


class GuardAccuracy:
    name = "guard_accuracy"
    dataset = "guard_accuracy/labelled.jsonl"
    metrics: tuple[str, ...] = ("misclassification_rate", *CLASSIFICATION_METRICS)

    def load(self, path: Path) -> list[Sample]:
        samples: list[Sample] = []
        seen: set[str] = set()
        for index, (where, row) in enumerate(_rows(path)):
            if not isinstance(row, dict):
                raise EvalError(f"dataset {path}: {where} is not a JSON object")
            try:
                label = read_label(row.get("label"))
                conversation = parse_conversation(row)
            except ValueError as exc:
                raise EvalError(f"dataset {path}: {where}: {exc}") from None
            sample_id = text_of(row.get("id", index))
            if sample_id in seen:
                raise EvalError(f"dataset {path}: {where} repeats id {sample_id!r}")
            seen.add(sample_id)
            category = text_of(row.get("category")).strip() or ("unsafe" if label else "safe")
            samples.append(Sample(sample_id, conversation, {**row, "label": label, "category": category}))
        if not samples:
            raise EvalError(f"dataset {path} holds no test cases")
        return samples

    def grade(self, samples: Sequence[Sample], verdicts: Sequence[Verdict]) -> list[Judged]:
        judged = []
        for sample, verdict in zip(samples, verdicts, strict=True):
            groups = {"category": sample.data["category"]}
            labels = f" {', '.join(verdict.labels)}" if verdict.labels else ""
            detail = f"{verdict.detector}: {verdict.decision}{labels} ({verdict.reason})"
            if verdict.error:
                judged.append(Judged({}, groups, detail, error=f"detector: {verdict.error}"))
                continue
            label = sample.data["label"]
            flagged = int(verdict.decision.rank > 0)
            judged.append(
                Judged(
                    {"misclassification_rate": float(flagged != label)},
                    groups,
                    detail,
                    columns={"label": float(label), "score": float(verdict.score), "flagged": float(flagged)},
                )
            )
        return judged
