"""Built-in pattern sets for the regex detector: secrets (private keys, API tokens) and PII (emails, phone
numbers, Luhn-checked card numbers, US social security numbers). RE2 syntax: linear time on any input.

A pattern's score is how sure a match is the thing named: 1.0 for a private key block, 0.4 for an email address
(often harmless). With the detector's own thresholds, 0.9 and above blocks and 0.5 and above asks for review.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RegexPattern:
    """One named pattern. `check` (optional) confirms a match's text, e.g. a Luhn checksum."""

    name: str
    pattern: str
    score: float = 1.0
    cwe: str = ""
    check: Callable[[str], bool] | None = None


def luhn_valid(text: str) -> bool:
    """True when the digits of `text` (13-19 of them, not all alike) pass the Luhn checksum."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def ssn_valid(text: str) -> bool:
    """US SSN rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = text.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def phone_valid(text: str) -> bool:
    """A plausible phone number has 7 to 15 digits (E.164's maximum)."""
    return 7 <= sum(c.isdigit() for c in text) <= 15


_SECRET = "CWE-798"
SECRETS: tuple[RegexPattern, ...] = (
    RegexPattern("private-key", r"-----BEGIN[ A-Z0-9]{0,30} PRIVATE KEY(?: BLOCK)?-----", 1.0, _SECRET),
    RegexPattern("aws-access-key-id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b", 1.0, _SECRET),
    RegexPattern(
        "github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,255})\b", 1.0, _SECRET
    ),
    RegexPattern("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,64}", 1.0, _SECRET),
    RegexPattern("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}", 1.0, _SECRET),
    RegexPattern(
        "slack-webhook",
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]{8,}",
        0.95,
        _SECRET,
    ),
    RegexPattern("stripe-live-key", r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,247}\b", 1.0, _SECRET),
    RegexPattern("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}", 1.0, _SECRET),
    RegexPattern("google-oauth-token", r"\bya29\.[0-9A-Za-z_-]{30,}", 0.95, _SECRET),
    RegexPattern(
        "openai-api-key",
        r"\bsk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{58,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
        1.0,
        _SECRET,
    ),
    RegexPattern("anthropic-api-key", r"\bsk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}", 1.0, _SECRET),
    RegexPattern("huggingface-token", r"\bhf_[A-Za-z]{34}\b", 1.0, _SECRET),
    RegexPattern("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b", 1.0, _SECRET),
    RegexPattern("azure-storage-key", r"AccountKey=[A-Za-z0-9+/]{86}==", 1.0, _SECRET),
    RegexPattern("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}", 0.7, _SECRET),
)

_PII = "CWE-359"
PII: tuple[RegexPattern, ...] = (
    RegexPattern(
        "email", r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b", 0.4, _PII
    ),
    RegexPattern(
        "phone-number",
        r"(?:\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){2,4}"
        r"|\(?\b[2-9][0-9]{2}\)?[ .-][0-9]{3}[ .-][0-9]{4})\b",
        0.4,
        _PII,
        phone_valid,
    ),
    RegexPattern("card-number", r"\b[0-9](?:[ -]?[0-9]){12,18}\b", 0.7, _PII, luhn_valid),
    RegexPattern("us-ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", 0.7, _PII, ssn_valid),
)

BUILTIN: dict[str, tuple[RegexPattern, ...]] = {"secrets": SECRETS, "pii": PII}
