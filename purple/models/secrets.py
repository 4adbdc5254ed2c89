"""API keys: kept out of reprs, logs, errors and output files."""

from __future__ import annotations

import re

_MASK = "***"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")


class Secret:
    """A string that never shows itself: `str()` and `repr()` give `***`; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret(***)" if self._value else "Secret('')"

    def __str__(self) -> str:
        return _MASK if self._value else ""


def redact(text: str, *secrets: Secret | str | None) -> str:
    """`text` with every given secret (and any `Bearer <token>`) replaced by `***`."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= 4:
            text = text.replace(value, _MASK)
    return _BEARER.sub(lambda m: m.group(1) + _MASK, text)
