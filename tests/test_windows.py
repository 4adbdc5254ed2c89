"""The window-cutting rule shared by Prompt Guard and the offline model."""

from __future__ import annotations

from itertools import pairwise

import pytest

from purple.windows import window_starts


@pytest.mark.parametrize("length", [0, 1, 9, 10, 11, 17, 18, 19, 40, 101])
def test_windows_cover_every_token_and_overlap(length: int) -> None:
    body, overlap = 10, 3
    starts = window_starts(length, body, overlap)
    covered = {i for s in starts for i in range(s, min(s + body, length))}
    assert covered == set(range(length))
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert all(b - a <= body - overlap for a, b in pairwise(starts))
    assert length <= body or (starts[-1] + body >= length and starts[-1] < length - overlap)


def test_short_texts_are_one_window() -> None:
    assert window_starts(0, 510, 64) == [0]
    assert window_starts(510, 510, 64) == [0]
    assert window_starts(511, 510, 64) == [0, 446]  # the second window shares 64 tokens with the first
    assert window_starts(1000, 510, 64) == [0, 446, 892]  # the last one is shorter
