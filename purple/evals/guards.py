"""The detector under test in `purple eval --guard SPEC`: a detector of the firewall registry, named in one string.

    injection             Purple's shipped injection model (also: purple-injection, promptguard)
    injection:PATH        a Prompt Guard 1 / 2 folder or Hugging Face id, or a Purple classifier folder
    llama_guard:MODEL     Llama Guard over a model spec: hf:PATH, openai:NAME, ... (also: llamaguard)
    content               Purple's offline content classifier, S1-S14 (also: purple-content)
    content:PATH          an offline model folder with a content head
    code_shield           Code Shield: regex tier, and semgrep when installed (also: codeshield)
    code_shield:regex     Code Shield's regex tier only
    hidden_unicode, secrets, pii
    regex:PATTERN         one RE2 pattern; a match scores 1.0

`parse_guard` only reads the string (nothing loads); `open_guard` builds the detector and closes it afterwards
when it was built for this run alone (shared registry detectors stay open for the process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from purple.evals.benchmark import EvalError
from purple.types import Detector

FORMS: dict[str, str] = {
    "injection": "injection[:PATH]",
    "llama_guard": "llama_guard:MODEL",
    "content": "content[:PATH]",
    "code_shield": "code_shield[:regex]",
    "hidden_unicode": "hidden_unicode",
    "secrets": "secrets",
    "pii": "pii",
    "regex": "regex:PATTERN",
}
"""Registry name -> the spec forms it takes."""
_REQUIRED_ARG = frozenset({"llama_guard", "regex"})
_NO_ARG = frozenset({"hidden_unicode", "secrets", "pii"})
_ALIASES = {
    "purple_injection": "injection", "promptguard": "injection", "prompt_guard": "injection",
    "llamaguard": "llama_guard", "codeshield": "code_shield", "purple_content": "content",
}


@dataclass(frozen=True)
class GuardSpec:
    """A parsed --guard: the firewall registry's detector name and the text after its first colon ("" if none)."""

    name: str
    arg: str = ""

    @property
    def text(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name


def parse_guard(spec: str) -> GuardSpec:
    """Read a --guard spec (see the module docstring); a bad one is an EvalError naming the accepted forms."""
    head, _, arg = spec.strip().partition(":")
    name = head.strip().lower().replace("-", "_")
    name = _ALIASES.get(name, name)
    forms = ", ".join(FORMS.values())
    if name not in FORMS:
        raise EvalError(f"unknown --guard detector {head.strip()!r}; expected one of: {forms}")
    arg = arg.strip()
    if name in _REQUIRED_ARG and not arg:
        raise EvalError(f"--guard {name} needs an argument: {FORMS[name]}")
    if arg and name in _NO_ARG:
        raise EvalError(f"--guard {name} takes no argument")
    if name == "code_shield" and arg not in ("", "regex"):
        raise EvalError(f"--guard code_shield:{arg}: expected code_shield or code_shield:regex")
    return GuardSpec(name, arg)


def _options(spec: GuardSpec) -> dict[str, Any]:
    """The firewall registry options a spec stands for."""
    if spec.name == "llama_guard":
        return {"model": spec.arg}
    if spec.name == "code_shield" and spec.arg == "regex":
        return {"semgrep": False}
    if spec.name == "regex":
        return {"patterns": [{"name": "pattern", "pattern": spec.arg, "score": 1.0}]}
    return {}


@contextmanager
def open_guard(spec: GuardSpec) -> Iterator[Detector]:
    """The detector a spec names; loading problems are one EvalError line."""
    from purple.firewall.registry import DETECTORS, DetectorUnavailable, build
    from purple.models.base import ModelError

    owned = (spec.name == "injection" and bool(spec.arg)) or not DETECTORS[spec.name].shared
    try:
        if spec.name == "injection" and spec.arg:
            from purple.promptguard import load_detector

            detector: Detector | None = load_detector(spec.arg)
        elif spec.name == "content":  # the offline classifier itself, whatever Llama Guard the environment names
            from purple.content.detector import ContentClassifier, default_content_detector

            detector = ContentClassifier(spec.arg) if spec.arg else default_content_detector()
        else:
            detector = build(spec.name, _options(spec))
    except (DetectorUnavailable, ModelError, RuntimeError, ValueError, OSError, ImportError) as exc:
        raise EvalError(f"--guard {spec.name}: {exc}") from None
    if detector is None:
        raise EvalError(f"--guard {spec.name}: the detector is switched off by configuration")
    try:
        yield detector
    finally:
        close = getattr(detector, "close", None)
        if owned and callable(close):
            close()
