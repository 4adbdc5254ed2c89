"""Two small metrics the offline models' training and evaluation share (no scikit-learn at run time)."""

from __future__ import annotations

import math


def roc_auc(scores: list[float], labels: list[int]) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged; NaN when one class is missing."""
    pairs = sorted(zip(scores, labels))
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(label for _, label in pairs[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def threshold_for_fpr(benign_scores: list[float], fpr: float) -> float:
    """The lowest threshold whose false-positive rate on these benign scores is at most `fpr`."""
    ordered = sorted(benign_scores, reverse=True)
    allowed = int(math.floor(fpr * len(ordered)))
    if allowed >= len(ordered):
        return 0.0
    return min(1.0, math.nextafter(ordered[allowed], 2.0))
