"""Hidden Unicode: text a reader cannot see but a model reads.

- Tag characters (U+E0000-U+E007F) spell out ASCII invisibly ("ASCII smuggling"). Score 1.0. The one legitimate
  use, emoji subdivision flags (a black flag, a few tag letters, then CANCEL TAG), is left alone.
- Zero-width and filler characters (zero-width space, word joiner, invisible operators, Hangul fillers, a
  mid-text byte-order mark) and runs of variation selectors can carry a payload bit by bit. A zero-width
  joiner or non-joiner between two non-ASCII letters or symbols (emoji sequences, Indic and Persian shaping)
  is ordinary text and is not counted. Score 0.3 for 1-3, 0.6 for 4-7, 0.9 for 8 or more.
- Bidirectional embedding, override and isolate controls reorder what is displayed ("Trojan Source").
  Score 0.8.

The detector's own decision: block at 0.9, human review at 0.5.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from purple.firewall.policy import decide
from purple.firewall.regex import line_column
from purple.types import BatchDetector, Conversation, Decision, Verdict

REVIEW_AT, BLOCK_AT = 0.5, 0.9

_TAGS = (0xE0000, 0xE007F)
_CANCEL_TAG = 0xE007F
_BLACK_FLAG = "\U0001f3f4"
_BIDI = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_JOINERS = frozenset({0x200C, 0x200D})
_VARIATION = frozenset(range(0xFE00, 0xFE10)) | frozenset(range(0xE0100, 0xE01F0))
_CANDIDATES = re.compile(
    "[\U000e0000-\U000e007f\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060-\u2064\ufeff\u180e"
    "\u115f\u1160\u3164\uffa0\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)
_SHOWN_CHARS = 80


class HiddenUnicode(BatchDetector):
    """Finds invisible characters in the last message of a conversation."""

    name = "hidden_unicode"

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        return [self._check(c[-1].content if c else "") for c in conversations]

    def _check(self, text: str) -> Verdict:
        if not _CANDIDATES.search(text):
            return Verdict(Decision.ALLOW, 0.0, self.name, reason="no hidden characters")
        tags: list[str] = []
        hidden = bidi = 0
        first: dict[str, int] = {}
        flag_tags = _flag_sequence_positions(text)
        previous_end = -2
        for match in _CANDIDATES.finditer(text):
            at = match.start()
            code = ord(match.group())
            if _TAGS[0] <= code <= _TAGS[1]:
                if at not in flag_tags:
                    tags.append(chr(code - 0xE0000) if 0x20 <= code - 0xE0000 < 0x7F else "")
                    first.setdefault("tags", at)
            elif code in _BIDI:
                bidi += 1
                first.setdefault("bidi", at)
            elif code in _VARIATION:
                # one selector after a base character is ordinary (emoji style, CJK variants); a run is a payload
                if previous_end == at:
                    hidden += 1
                    first.setdefault("hidden", at)
            elif code in _JOINERS and _between_non_ascii(text, at) or code == 0xFEFF and at == 0:
                pass
            else:
                hidden += 1
                first.setdefault("hidden", at)
            previous_end = match.end() if code in _VARIATION else -2
        scores: list[tuple[float, str, str]] = []
        if tags:
            decoded = "".join(tags)[:_SHOWN_CHARS]
            scores.append(
                (
                    1.0,
                    "unicode-tags",
                    f"{len(tags)} Unicode tag character(s) {_where(text, first['tags'])} "
                    f"spelling {decoded!r}",
                )
            )
        if hidden:
            score = 0.9 if hidden >= 8 else 0.6 if hidden >= 4 else 0.3
            scores.append(
                (
                    score,
                    "zero-width",
                    f"{hidden} zero-width or filler character(s) {_where(text, first['hidden'])}",
                )
            )
        if bidi:
            scores.append(
                (
                    0.8,
                    "bidi-control",
                    f"{bidi} bidirectional control character(s) {_where(text, first['bidi'])}",
                )
            )
        if not scores:
            return Verdict(Decision.ALLOW, 0.0, self.name, reason="only ordinary joiners and selectors")
        score = max(s for s, _, _ in scores)
        return Verdict(
            decide(score, REVIEW_AT, BLOCK_AT),
            score,
            self.name,
            labels=tuple(label for _, label, _ in scores),
            reason="; ".join(text for _, _, text in scores),
        )


def _flag_sequence_positions(text: str) -> set[int]:
    """Positions of tag characters that belong to emoji flag sequences (black flag, tags, cancel tag)."""
    positions: set[int] = set()
    start = text.find(_BLACK_FLAG)
    while start != -1:
        at = start + 1
        run: list[int] = []
        while at < len(text) and len(run) < 8 and 0xE0020 <= ord(text[at]) < _CANCEL_TAG:
            run.append(at)
            at += 1
        if run and at < len(text) and ord(text[at]) == _CANCEL_TAG:
            positions.update(run)
            positions.add(at)
        start = text.find(_BLACK_FLAG, at)
    return positions


def _between_non_ascii(text: str, at: int) -> bool:
    if at == 0 or at + 1 >= len(text):
        return False
    return _visible_non_ascii(text[at - 1]) and _visible_non_ascii(text[at + 1])


def _visible_non_ascii(char: str) -> bool:
    code = ord(char)
    return code > 0x7F and (code in _VARIATION or not _CANDIDATES.match(char))


def _where(text: str, at: int) -> str:
    line, column = line_column(text, at)
    return f"(first at line {line}, column {column})"
