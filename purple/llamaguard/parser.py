"""Read Llama Guard's answer: 'safe', or 'unsafe' and a line of category codes."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from purple.llamaguard.taxonomy import sort_codes

MAX_UNKNOWN = 10
_CODE_SHAPE = re.compile(r"^[A-Z]{1,4}\d{1,3}$")
_CODE_SPLIT = re.compile(r"[,;\s]+")
_TOKEN_MARKERS = "\u0120\u2581\u010a"  # byte-level space, sentencepiece space, byte-level newline


@dataclass(frozen=True, slots=True)
class GuardAnswer:
    """A parsed answer. `unsafe` is None when the text is neither 'safe' nor 'unsafe ...'."""

    unsafe: bool | None
    codes: tuple[str, ...] = ()
    unknown_codes: tuple[str, ...] = ()
    excluded_codes: tuple[str, ...] = ()
    unreadable: str = ""
    """Text on the codes line that is not a category code at all (shown, shortened, in the reason)."""

    @property
    def parsed(self) -> bool:
        return self.unsafe is not None


def parse_answer(text: str, known: Collection[str], excluded: Collection[str] = ()) -> GuardAnswer:
    """Parse the model's text, tolerating spacing, case and stray tokens.

    Codes are read from the first non-empty line after 'unsafe'. Codes the taxonomy does not know are kept in
    `unknown_codes` (reported, not dropped). Codes in `excluded` are set aside; an answer whose only codes are
    excluded counts as safe.
    """
    words = [w for w in re.split(r"\s+", text.strip()) if w]
    if not words:
        return GuardAnswer(None)
    first = words[0].lower().strip(".:,;'\"")
    if first == "safe":
        return GuardAnswer(False)
    if first != "unsafe":
        return GuardAnswer(None)
    remainder = text.strip()[len(words[0]) :]
    rest = next((line for line in remainder.splitlines() if line.strip()), "")
    known_upper = {k.upper(): k for k in known}
    excluded_upper = {e.upper() for e in excluded}
    codes: list[str] = []
    unknown: list[str] = []
    dropped: list[str] = []
    noise: list[str] = []
    for raw in _CODE_SPLIT.split(rest):
        code = raw.strip(".:'\"()[]").upper()
        if not code:
            continue
        if code in excluded_upper:
            dropped.append(code)
        elif code in known_upper:
            codes.append(known_upper[code])
        elif _CODE_SHAPE.match(code):
            unknown.append(code)
        else:
            noise.append(raw)
    if dropped and not codes and not unknown:
        return GuardAnswer(False, excluded_codes=tuple(sort_codes(dropped)))
    unreadable = "".join(ch if ch.isprintable() else "?" for ch in " ".join(noise))[:60]
    return GuardAnswer(
        True,
        tuple(sort_codes(codes)),
        tuple(sort_codes(unknown))[:MAX_UNKNOWN],
        tuple(sort_codes(dropped)),
        unreadable,
    )


def answer_probs(top: Mapping[str, float]) -> tuple[float, float] | None:
    """(P(safe), P(unsafe)) from one position's top log-probabilities, or None if neither word is among them.

    A token counts towards a word when its text (spacing stripped) starts that word and not the other one, so
    'unsafe', ' unsafe' and a split 'un' all count as unsafe.
    """
    safe = unsafe = 0.0
    seen = False
    for token, logprob in top.items():
        piece = token.strip().strip(_TOKEN_MARKERS).lower()
        if not piece:
            continue
        is_safe = "safe".startswith(piece)
        is_unsafe = "unsafe".startswith(piece)
        if is_unsafe and not is_safe:
            unsafe += math.exp(logprob)
            seen = True
        elif is_safe and not is_unsafe:
            safe += math.exp(logprob)
            seen = True
    return (min(1.0, safe), min(1.0, unsafe)) if seen else None
