"""Ready policies: `chatbot` (the default), `coding` and `agent`. All work offline with no key.

| role | chatbot | coding | agent |
|---|---|---|---|
| system | hidden_unicode | hidden_unicode | hidden_unicode |
| user | injection, hidden_unicode, secrets | injection, hidden_unicode, secrets | injection, hidden_unicode |
| assistant | code_shield (regex tier), hidden_unicode, secrets, pii | code_shield (both tiers), hidden_unicode, secrets | code_shield (both tiers), alignment, hidden_unicode, secrets |
| tool | injection, hidden_unicode, code_shield (regex tier) | injection, hidden_unicode, code_shield | injection, hidden_unicode, code_shield |
| memory | injection, hidden_unicode | injection, hidden_unicode | injection, hidden_unicode |

`alignment` is off unless a model is configured (`PURPLE_ALIGNMENT_MODEL` or the policy's detectors.alignment.model).
"""

from __future__ import annotations

from purple.firewall.policy import DetectorPolicy, Policy, PolicyError

DEFAULT_PRESET = "chatbot"


def _chatbot() -> Policy:
    return Policy(
        name="chatbot",
        budget_ms=1000,
        detectors={"code_shield": DetectorPolicy("code_shield", {"semgrep": False})},
        roles={
            "system": ["hidden_unicode"],
            "user": ["injection", "hidden_unicode", "secrets"],
            "assistant": ["code_shield", "hidden_unicode", "secrets", "pii"],
            "tool": ["injection", "hidden_unicode", "code_shield"],
            "memory": ["injection", "hidden_unicode"],
        },
    )


def _coding() -> Policy:
    return Policy(
        name="coding",
        budget_ms=5000,
        detectors={"code_shield": DetectorPolicy("code_shield", {"semgrep": "auto"})},
        roles={
            "system": ["hidden_unicode"],
            "user": ["injection", "hidden_unicode", "secrets"],
            "assistant": ["code_shield", "hidden_unicode", "secrets"],
            "tool": ["injection", "hidden_unicode", "code_shield"],
            "memory": ["injection", "hidden_unicode"],
        },
    )


def _agent() -> Policy:
    return Policy(
        name="agent",
        budget_ms=15000,
        detectors={
            "code_shield": DetectorPolicy("code_shield", {"semgrep": "auto"}),
            "alignment": DetectorPolicy("alignment", on_error="closed"),
        },
        roles={
            "system": ["hidden_unicode"],
            "user": ["injection", "hidden_unicode"],
            "assistant": ["code_shield", "alignment", "hidden_unicode", "secrets"],
            "tool": ["injection", "hidden_unicode", "code_shield"],
            "memory": ["injection", "hidden_unicode"],
        },
    )


PRESETS = {"chatbot": _chatbot, "coding": _coding, "agent": _agent}


def preset(name: str = DEFAULT_PRESET) -> Policy:
    """A fresh copy of the named preset policy."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise PolicyError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
