"""Undo the cheap evasions that hide an attack from a text classifier, before the model sees the text.

Any detector can use it: `normalize(text)` gives the text to classify, `analyze(text)` also says which evasions were
found. What it undoes, in this order:

1. Unicode tag characters (U+E0000-U+E007F), the "ASCII smuggling" block: the printable ones are decoded to the
   ASCII they stand for (so the hidden instruction is classified), the rest are removed.
2. Zero-width and other invisible characters (zero-width space, word joiner, soft hyphen, BOM, bidi controls,
   variation selectors, Hangul fillers, ...). ZWJ / ZWNJ are kept where they join non-Latin letters or emoji, where
   they are part of legitimate writing (Persian, Indic scripts, emoji sequences).
3. NFKC compatibility folding: full-width letters, mathematical alphanumerics (bold, script, double-struck ...),
   circled and parenthesised letters, ligatures, exotic spaces.
4. Confusable look-alike letters (Cyrillic, Greek, Armenian, a few IPA/Latin-extended) mixed into Latin words are
   folded to the Latin letters they imitate; a word made only of look-alikes is folded when its neighbouring words
   are Latin. Words in a real non-Latin script (with letters that have no Latin twin) are never touched, so Russian,
   Greek or Armenian text stays as it is.
5. Character spacing: runs of single letters separated by short separators ("i g n o r e", "i.g.n.o.r.e",
   "i-g-n-o-r-e") are joined when at least four of them form one word; where the separators differ in length, the
   longer ones ("i g n o r e   a l l") are kept as word boundaries.

Every step is linear in the length of the text, and pure-ASCII text without spaced letters takes a fast path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------- tables
_TAG_TABLE: dict[int, int | None] = {cp: None for cp in range(0xE0000, 0xE0080)}
_TAG_TABLE.update({cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)})

_INVISIBLE_CODEPOINTS = [
    0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x180F,
    0x200B, 0x200E, 0x200F, 0x2028, 0x2029, 0x3164, 0xFEFF, 0xFFA0, 0xFFF9, 0xFFFA, 0xFFFB,
    *range(0x202A, 0x202F), *range(0x2060, 0x2070), *range(0xFE00, 0xFE10), *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B), *range(0xE0100, 0xE01F0),
]
_INVISIBLE_TABLE: dict[int, int | None] = {cp: None for cp in _INVISIBLE_CODEPOINTS}
# line / paragraph separators become newlines rather than vanishing
_INVISIBLE_TABLE[0x2028] = 0x0A
_INVISIBLE_TABLE[0x2029] = 0x0A
_JOINERS = "\u200c\u200d"
_SUSPECT = frozenset(chr(cp) for cp in _INVISIBLE_CODEPOINTS) | frozenset(_JOINERS)

# look-alike letter -> the Latin letter it imitates
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "ӏ": "l", "м": "m", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t", "у": "y", "ү": "y", "ԝ": "w", "х": "x",
    "ɡ": "g", "п": "n",
    "А": "A", "В": "B", "С": "C", "Е": "E", "Ё": "E", "Н": "H", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "М": "M",
    "О": "O", "Р": "P", "Ԛ": "Q", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y", "Ү": "Y", "Ԝ": "W", "Ӏ": "I", "Ь": "b",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ω": "w",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian
    "օ": "o", "ս": "u", "ց": "g", "զ": "q", "հ": "h", "ո": "n", "ա": "w", "Տ": "S", "Օ": "O",
    # IPA and Latin-extended look-alikes that NFKC leaves alone
    "ɑ": "a", "ɩ": "i", "ɪ": "i", "ʏ": "y", "ᴄ": "c", "ᴏ": "o", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ʀ": "r",
    "ɴ": "n", "ʜ": "h", "ᴋ": "k", "ᴍ": "m", "ᴛ": "t", "ᴇ": "e", "ᴀ": "a", "ᴅ": "d", "ꞵ": "b", "ı": "i",
    # Cherokee capitals
    "Ꭺ": "A", "Ᏼ": "B", "Ꮯ": "C", "Ꭼ": "E", "Ꮋ": "H", "Ꮶ": "K", "Ꮇ": "M", "Ꮲ": "P", "Ꮪ": "S", "Ꭲ": "T",
    "Ꮃ": "W", "Ꮓ": "Z",
}
_CONFUSABLE_SET = frozenset(CONFUSABLES)
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)

_TAG_CHAR = re.compile("[\U000E0000-\U000E007F]")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
# a quick screen for spaced letters (four single letters with short separators); bounded, so linear
_SPACED_SCREEN = re.compile(r"(?<![^\W\d_])[^\W\d_](?:[ \t.\-_*|+/~:,]{1,3}[^\W\d_](?![^\W\d_])){3}")
_SEPARATORS = frozenset(" \t.-_*|+/~:,")
_PUNCT_SEPARATORS = frozenset(".-_*|+/~:,")


def _is_latin(ch: str) -> bool:
    o = ord(ch)
    return ch.isascii() or 0xC0 <= o <= 0x24F or 0x1E00 <= o <= 0x1EFF or 0x2C60 <= o <= 0x2C7F or 0xA720 <= o <= 0xA7FF


def _is_emoji_or_symbol(ch: str) -> bool:
    o = ord(ch)
    return o >= 0x1F000 or 0x2600 <= o <= 0x27BF or o == 0xFE0F


# ------------------------------------------------------------------------------------------- result
@dataclass(frozen=True, slots=True)
class Normalized:
    """The text to classify and the evasions found (names from EVASIONS, in the order they were undone)."""

    text: str
    evasions: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.evasions)


EVASIONS = ("tag_characters", "invisible_characters", "compatibility_characters", "confusables", "character_spacing")


def readable_text(value: Any, max_chars: int) -> str:
    """The text a detector scores: bytes decoded as UTF-8, NULs as spaces, lone surrogates replaced.

    Raises ValueError with one readable line for input that is not text, not valid UTF-8, or over `max_chars`.
    Every offline head reads text prepared this way, so an encoder's cache serves every head on it."""
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid UTF-8 (first bad byte at offset {exc.start})") from None
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise ValueError(f"text is {len(value):,} characters; the limit is {max_chars:,}")
    return value.replace("\x00", " ").encode("utf-8", errors="replace").decode("utf-8")


def normalize(text: str) -> str:
    """The text with the evasions undone (see the module docstring)."""
    return analyze(text).text


def analyze(text: str) -> Normalized:
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    found: list[str] = []
    if not text.isascii():
        if _TAG_CHAR.search(text):
            text = text.translate(_TAG_TABLE)
            found.append("tag_characters")
        if not _SUSPECT.isdisjoint(text):
            stripped = _strip_invisible(text)
            if stripped != text:
                found.append("invisible_characters")
                text = stripped
        folded = unicodedata.normalize("NFKC", text)
        if folded != text:
            if _compat_letters_changed(text, folded):
                found.append("compatibility_characters")
            text = folded
        if not _CONFUSABLE_SET.isdisjoint(text):
            folded = _fold_confusables(text)
            if folded != text:
                found.append("confusables")
                text = folded
    if _SPACED_SCREEN.search(text):
        joined = _join_spaced(text)
        if joined != text:
            found.append("character_spacing")
            text = joined
    return Normalized(text, tuple(found))


def _compat_letters_changed(before: str, after: str) -> bool:
    """NFKC also recomposes accents and maps exotic spaces; report only letter-shape disguises."""
    for ch in before:
        o = ord(ch)
        if 0xFF01 <= o <= 0xFF5E or 0x1D400 <= o <= 0x1D7FF or 0x2460 <= o <= 0x24FF or 0x1F100 <= o <= 0x1F1FF:
            return True
    return False


def _strip_invisible(text: str) -> str:
    if not any(j in text for j in _JOINERS):
        return text.translate(_INVISIBLE_TABLE)
    out: list[str] = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch in _JOINERS:
            prev = text[i - 1] if i > 0 else ""
            nxt = text[i + 1] if i + 1 < n else ""
            keep = (prev and not _is_latin(prev) and (prev.isalpha() or unicodedata.category(prev).startswith("M")
                    or _is_emoji_or_symbol(prev))) and (nxt and not _is_latin(nxt) and not nxt.isspace())
            if keep:
                out.append(ch)
            continue
        out.append(ch)
    return "".join(out).translate(_INVISIBLE_TABLE)


def _fold_confusables(text: str) -> str:
    runs = [(m.start(), m.end()) for m in _LETTER_RUN.finditer(text)]
    # per run: 'latin' (only Latin letters), 'mixed' (Latin + look-alikes), 'alike' (only look-alikes), 'other'
    kinds: list[str] = []
    for start, end in runs:
        latin = alike = other = 0
        for ch in text[start:end]:
            if ch in _CONFUSABLE_SET:
                alike += 1
            elif _is_latin(ch):
                latin += 1
            elif ch.isalpha():
                other += 1
        if other:
            kinds.append("other")
        elif alike and latin:
            kinds.append("mixed")
        elif alike:
            kinds.append("alike")
        else:
            kinds.append("latin")
    pieces: list[str] = []
    last = 0
    for index, ((start, end), kind) in enumerate(zip(runs, kinds)):
        fold = kind == "mixed"
        if kind == "alike":
            neighbours = [kinds[j] for j in (index - 1, index + 1) if 0 <= j < len(kinds)]
            fold = any(k in ("latin", "mixed") for k in neighbours) and "other" not in neighbours
        if fold:
            pieces.append(text[last:start])
            pieces.append(text[start:end].translate(_CONFUSABLE_TABLE))
            last = end
    pieces.append(text[last:])
    return "".join(pieces)


def _join_spaced(text: str) -> str:
    """Join runs of >= 4 single letters separated by short separators (one linear scan)."""
    n = len(text)
    out: list[str] = []
    i = 0
    last = 0
    while i < n:
        ch = text[i]
        if not (ch.isalpha() and (i == 0 or not text[i - 1].isalnum())):
            i += 1
            continue
        # try to grow a run starting at i: letter (sep letter)+
        letters = [i]
        seps: list[tuple[int, int]] = []
        j = i
        while True:
            if j + 1 < n and text[j + 1].isalnum():
                break  # the letter is part of a word: the run ends before it
            k = j + 1
            punct = 0
            while k < n and text[k] in _SEPARATORS and k - j <= 4:
                punct += text[k] in _PUNCT_SEPARATORS
                k += 1
            if k == j + 1 or k >= n or k - j > 4 or punct > 1 or not text[k].isalpha():
                break
            if k + 1 < n and text[k + 1].isalnum():
                break
            seps.append((j + 1, k))
            letters.append(k)
            j = k
        shortest = min((e - s for s, e in seps), default=0)
        groups = [1]  # letters per word: a separator longer than the shortest one ends a word
        for s, e in seps:
            if e - s > shortest:
                groups.append(1)
            else:
                groups[-1] += 1
        if len(letters) >= 4 and max(groups) >= 4:
            out.append(text[last:i])
            out.append(text[letters[0]])
            for (s, e), pos in zip(seps, letters[1:]):
                if e - s > shortest:
                    out.append(" ")
                out.append(text[pos])
            last = letters[-1] + 1
            i = last
        else:
            i = letters[-1] + 1 if len(letters) > 1 else i + 1
    out.append(text[last:])
    return "".join(out)
