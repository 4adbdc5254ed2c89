"""Sentence BLEU (0-100) for code, with sacrebleu's defaults: 4-grams, exponential smoothing, brevity penalty."""

from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_ORDER = 4


def tokenize(text: str) -> list[str]:
    """Words and single punctuation marks, so code compares token by token."""
    return _TOKEN.findall(text)


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """BLEU of one hypothesis against one reference, 0-100."""
    hyp, ref = tokenize(hypothesis), tokenize(reference)
    if not hyp or not ref:
        return 0.0
    log_precision = 0.0
    smooth = 1.0
    for n in range(1, MAX_ORDER + 1):
        hyp_grams, ref_grams = _ngrams(hyp, n), _ngrams(ref, n)
        total = max(0, len(hyp) - n + 1)
        matched = sum(min(count, ref_grams[gram]) for gram, count in hyp_grams.items())
        if total == 0:
            return _finish(log_precision / (n - 1), hyp, ref)  # effective order for short texts
        if matched == 0:
            smooth *= 2
            precision = 1.0 / (smooth * total)
        else:
            precision = matched / total
        log_precision += math.log(precision)
    return _finish(log_precision / MAX_ORDER, hyp, ref)


def _finish(mean_log_precision: float, hyp: list[str], ref: list[str]) -> float:
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return round(100.0 * brevity * math.exp(mean_log_precision), 4)
