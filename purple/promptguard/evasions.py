"""Evasion transforms: how attackers disguise an injection from a classifier. For measuring and for training.

Each transform takes the text (or, for an attack hidden in a document, just the attack part) and a random source and
returns the disguised text. `purple.promptguard.normalize` is meant to undo them; `apply_to_payload` disguises only
the inserted attack when an example knows where it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Latin -> look-alike (Cyrillic first, Greek for letters Cyrillic lacks)
_HOMOGLYPHS = {
    "a": "а", "c": "с", "e": "е", "i": "і", "j": "ј", "o": "о", "p": "р", "s": "ѕ", "x": "х", "y": "у",
    "h": "һ", "A": "А", "B": "В", "C": "С", "E": "Е", "H": "Н", "I": "І", "K": "К", "M": "М", "O": "О",
    "P": "Р", "T": "Т", "X": "Х", "Y": "У",
}
_MIXED = {
    "a": "α", "o": "ο", "v": "ν", "p": "ρ", "i": "ι", "k": "κ", "x": "χ", "u": "υ", "e": "е", "c": "с",
    "s": "ѕ", "y": "у", "A": "Α", "B": "Β", "E": "Ε", "H": "Η", "K": "Κ", "M": "Μ", "N": "Ν", "O": "Ο",
    "T": "Τ", "Z": "Ζ", "X": "Χ",
}
_ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")


def spacing(text: str, rng: random.Random) -> str:
    """Every letter separated by a space, words by three (the Prompt Guard 1 bypass, llama-models#50)."""
    sep = rng.choice((" ", " ", ".", "-"))
    words = text.split(" ")
    return "   ".join(sep.join(word) for word in words)


def zero_width(text: str, rng: random.Random) -> str:
    """A zero-width or invisible character after most characters."""
    out = []
    for ch in text:
        out.append(ch)
        if not ch.isspace() and rng.random() < 0.7:
            out.append(rng.choice(_ZERO_WIDTH))
    return "".join(out)


def tag_characters(text: str, rng: random.Random) -> str:
    """The whole text re-written in invisible Unicode tag characters ("ASCII smuggling"), after a benign lead-in."""
    hidden = "".join(chr(0xE0000 + ord(ch)) if 0x20 <= ord(ch) < 0x7F else ch for ch in text)
    return rng.choice(("Thanks for the summary! ", "Please see the attached notes. ", "")) + hidden


def homoglyphs(text: str, rng: random.Random) -> str:
    """Latin letters replaced by Cyrillic look-alikes (about two thirds of those that have one)."""
    return "".join(_HOMOGLYPHS[ch] if ch in _HOMOGLYPHS and rng.random() < 0.67 else ch for ch in text)


def mixed_scripts(text: str, rng: random.Random) -> str:
    """Greek and Cyrillic look-alikes mixed into the same words, plus a few full-width and math-bold letters."""
    out = []
    for ch in text:
        roll = rng.random()
        if ch in _MIXED and roll < 0.5:
            out.append(_MIXED[ch])
        elif ch.isascii() and ch.isalpha() and roll < 0.6:
            out.append(chr(0xFF21 + ord(ch) - 65) if ch.isupper() else chr(0xFF41 + ord(ch) - 97))
        elif ch.isascii() and ch.islower() and roll < 0.65:
            out.append(chr(0x1D41A + ord(ch) - 97))
        else:
            out.append(ch)
    return "".join(out)


EVASIONS: dict[str, Callable[[str, random.Random], str]] = {
    "character_spacing": spacing,
    "zero_width": zero_width,
    "tag_characters": tag_characters,
    "confusables": homoglyphs,
    "mixed_scripts": mixed_scripts,
}


def apply_to_payload(text: str, payload: str | None, transform: Callable[[str, random.Random], str],
                     rng: random.Random) -> str:
    """Disguise only the attack when it is known and present in the text, else the whole text."""
    if payload and payload in text:
        return text.replace(payload, transform(payload, rng), 1)
    return transform(text, rng)
