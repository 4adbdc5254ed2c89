"""Binary classification metrics over a whole labelled set: a detector's decisions and scores against gold labels.

Labels and decisions are 0/1 (1: unsafe / flagged); scores are in [0, 1], higher meaning more likely unsafe.
A metric that is undefined on the set (recall with no unsafe cases, FPR with no safe ones, precision when
nothing was flagged, AUPRC and ROC AUC unless both classes are present) is None, never a made-up 0 or 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the precision-recall curve, step-wise: sum over score thresholds (high to low, ties taken
    together) of (recall gained) x (precision there). None unless both classes are present (with unsafe cases
    only it would be 1.0 whatever the scores)."""
    positives = sum(labels)
    if not positives or positives == len(labels):
        return None
    ranked = sorted(zip(scores, labels), key=lambda pair: pair[0], reverse=True)
    true_pos = seen = 0
    area = recall_before = 0.0
    for _, tied in groupby(ranked, key=lambda pair: pair[0]):
        block = [label for _, label in tied]
        true_pos += sum(block)
        seen += len(block)
        recall = true_pos / positives
        area += (recall - recall_before) * (true_pos / seen)
        recall_before = recall
    return area


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance an unsafe case scores above a safe one (ties count half).
    None unless both classes are present."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    ranked = sorted(zip(scores, labels), key=lambda pair: pair[0])
    rank_sum = 0.0
    start = 1
    for _, tied in groupby(ranked, key=lambda pair: pair[0]):
        block = [label for _, label in tied]
        mean_rank = start + (len(block) - 1) / 2  # tied scores share the mean of their ranks
        rank_sum += mean_rank * sum(block)
        start += len(block)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


CLASSIFICATION_METRICS = ("precision", "recall", "f1", "fpr", "auprc", "roc_auc")
"""The set-level metrics `classification_metrics` returns."""


def classification_metrics(labels: Sequence[int], scores: Sequence[float],
                           flagged: Sequence[int]) -> dict[str, float | None]:
    """precision, recall, f1 and fpr at the detector's own decisions; auprc and roc_auc from its scores."""
    if not len(labels) == len(scores) == len(flagged):
        raise ValueError("labels, scores and flagged must have the same length")
    true_pos = sum(1 for y, f in zip(labels, flagged) if y and f)
    false_pos = sum(1 for y, f in zip(labels, flagged) if not y and f)
    false_neg = sum(1 for y, f in zip(labels, flagged) if y and not f)
    negatives = sum(1 for y in labels if not y)
    return {
        "precision": _ratio(true_pos, true_pos + false_pos),
        "recall": _ratio(true_pos, true_pos + false_neg),
        "f1": _ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg),
        "fpr": _ratio(false_pos, negatives),
        "auprc": average_precision(labels, scores),
        "roc_auc": roc_auc(labels, scores),
    }
