"""Overlapping token windows: how Prompt Guard and Purple's offline model cut a long text (one rule for both)."""

from __future__ import annotations


def window_starts(length: int, body: int, overlap: int) -> list[int]:
    """Where each window of `body` tokens starts: consecutive windows share `overlap` tokens and together they cover
    all `length` tokens (the last may be shorter). At least one window (maybe empty)."""
    if length <= body:
        return [0]
    # every start short of the last `overlap` tokens: the last window then reaches the end (it may be shorter)
    return list(range(0, length - overlap, body - overlap))
