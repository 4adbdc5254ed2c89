"""API keys: kept out of reprs, logs, errors and output files."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

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


def public_url(url: str) -> str:
    """`url` fit to show in records, reports and errors: user and password, query values and fragment masked.

    `https://bob:pw@gw.example/v1?key=K&api-version=1` -> `https://***@gw.example/v1?key=***&api-version=***`.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return _MASK
    netloc = parts.netloc
    if "@" in netloc:
        shown_host = f"[{host}]" if ":" in host else host
        netloc = f"{_MASK}@{shown_host}{f':{port}' if port is not None else ''}"
    query = "&".join(f"{pair.split('=', 1)[0]}={_MASK}" for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, parts.path, query, _MASK if parts.fragment else ""))
