"""The detectors a policy can name: one explicit dict from name to builder. Imports are lazy, so reading a
policy never loads a model; `build` is called once per detector when a Firewall is made.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from purple.types import Detector

ALIGNMENT_MODEL_ENV = "PURPLE_ALIGNMENT_MODEL"
GUARD_MODEL_ENV = "PURPLE_GUARD_MODEL"
"""The Llama Guard model spec the `content` detector uses when its policy names none (also `purple guard`'s)."""
CONTENT_OFFLINE_OPTIONS = frozenset({"taxonomy", "categories", "exclude", "threshold"})
"""The `content` options that Purple's offline classifier takes too (the rest are Llama Guard's)."""


class DetectorUnavailable(Exception):
    """A detector the policy asks for cannot be built here (a missing module or model, bad options)."""


@dataclass(frozen=True)
class Entry:
    """How to build one kind of detector.

    `build(options)` returns the detector, or None when it is switched off by configuration (`off_reason` says why).
    `shared` detectors are stateless and costly to build: one instance per process serves every firewall that
    asks for the same options.
    """

    build: Callable[[dict[str, Any]], Detector | None]
    options: frozenset[str]
    summary: str
    shared: bool = False
    off_reason: str = ""


def _injection(options: dict[str, Any]) -> Detector:
    if importlib.util.find_spec("purple.promptguard") is None:
        raise DetectorUnavailable(
            "the injection detector comes from purple.promptguard, which this installation does not have"
        )
    try:
        from purple.promptguard import default_detector
    except ImportError as exc:
        raise DetectorUnavailable(f"the injection detector cannot be imported: {exc}") from None
    return default_detector()


def _code_shield(options: dict[str, Any]) -> Detector:
    from purple.codeshield import CodeShield

    rules = options.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise DetectorUnavailable("code_shield `rules` must be a list of folders")
    if options.get("semgrep", "auto") not in (True, False, "auto"):
        raise DetectorUnavailable("code_shield `semgrep` must be true, false or auto")
    return CodeShield(
        rule_dirs=rules,
        semgrep=options.get("semgrep", "auto"),
        treatment=options.get("treatment"),
        semgrep_timeout_s=float(options.get("semgrep_timeout_s", 30.0)),
    )


def _hidden_unicode(options: dict[str, Any]) -> Detector:
    from purple.firewall.hidden_unicode import HiddenUnicode

    return HiddenUnicode()


def _regex_family(builtin: tuple[str, ...]) -> Callable[[dict[str, Any]], Detector]:
    def build(options: dict[str, Any]) -> Detector:
        from purple.firewall.regex import RegexDetector

        name = "regex" if not builtin else builtin[0]
        patterns = options.get("patterns", [])
        if not isinstance(patterns, list):
            raise DetectorUnavailable("`patterns` must be a list of {name, pattern, score}")
        if not builtin and not patterns:
            raise DetectorUnavailable(
                "the regex detector needs `patterns` (a list of {name, pattern, score})"
            )
        return RegexDetector(patterns, builtin=builtin, name=name)

    return build


def _llama_guard(options: dict[str, Any]) -> Detector:
    from purple.llamaguard import LlamaGuard

    options = dict(options)
    model = options.pop("model", None)
    if not model:
        raise DetectorUnavailable(
            "llama_guard needs `model` (e.g. hf:meta-llama/Llama-Guard-3-1B or openai:NAME)"
        )
    return LlamaGuard(model, **options)


def _content(options: dict[str, Any]) -> Detector:
    """Llama Guard when a model is configured (`model`, else PURPLE_GUARD_MODEL), else Purple's offline classifier
    (also when the model named is `purple-content[:FOLDER]`)."""
    options = dict(options)
    model = options.pop("model", None) or os.environ.get(GUARD_MODEL_ENV)
    try:
        from purple.content.detector import ContentClassifier, content_model_folder, default_content_detector
    except ImportError as exc:
        raise DetectorUnavailable(f"the content detector cannot be imported: {exc}") from None
    folder = content_model_folder(model) if model else None
    if model and folder is None:
        from purple.llamaguard import LlamaGuard

        return LlamaGuard(model, **options)
    llama_guard_only = sorted(set(options) - CONTENT_OFFLINE_OPTIONS)
    if llama_guard_only:
        raise DetectorUnavailable(
            f"content option(s) {', '.join(llama_guard_only)} are for Llama Guard, and no Llama Guard model is "
            f"configured (detectors.content.model or {GUARD_MODEL_ENV})"
        )
    try:
        if folder is None and not options:
            return default_content_detector()
        from purple.offline.encoder import CONTENT_MODEL_DIR

        return ContentClassifier(folder or CONTENT_MODEL_DIR, **options)
    except (RuntimeError, ValueError, OSError) as exc:
        why = (f"the offline content classifier in {folder}" if folder is not None else
               f"no Llama Guard model is configured (detectors.content.model or {GUARD_MODEL_ENV}) and the offline "
               "content classifier")
        raise DetectorUnavailable(f"{why} cannot be used: {exc}") from None


def _alignment(options: dict[str, Any]) -> Detector | None:
    from purple.firewall.alignment import AlignmentCheck

    options = dict(options)
    model = options.pop("model", None) or os.environ.get(ALIGNMENT_MODEL_ENV)
    if not model:
        return None
    return AlignmentCheck(model, **options)


DETECTORS: dict[str, Entry] = {
    "injection": Entry(
        _injection, frozenset(), "Purple's shipped offline prompt-injection model", shared=True
    ),
    "code_shield": Entry(
        _code_shield,
        frozenset({"semgrep", "rules", "treatment", "semgrep_timeout_s"}),
        "insecure code in fenced blocks or whole messages (regex tier; semgrep tier when asked)",
        shared=True,
    ),
    "hidden_unicode": Entry(
        _hidden_unicode,
        frozenset(),
        "invisible text: tag characters, zero-width runs, bidirectional controls",
        shared=True,
    ),
    "regex": Entry(_regex_family(()), frozenset({"patterns"}), "your own RE2 patterns", shared=True),
    "secrets": Entry(
        _regex_family(("secrets",)), frozenset({"patterns"}), "private keys and API tokens", shared=True
    ),
    "pii": Entry(
        _regex_family(("pii",)),
        frozenset({"patterns"}),
        "emails, phone numbers, card numbers (Luhn-checked), US social security numbers",
        shared=True,
    ),
    "llama_guard": Entry(
        _llama_guard,
        frozenset(
            {
                "model",
                "version",
                "taxonomy",
                "categories",
                "exclude",
                "threshold",
                "codes",
                "mode",
                "base_url",
                "api_key_env",
                "dtype",
                "device",
                "batch_size",
                "concurrency",
                "timeout_s",
            }
        ),
        "Llama Guard content classifier (needs a model)",
    ),
    "content": Entry(
        _content,
        frozenset(
            {
                "model",
                "version",
                "taxonomy",
                "categories",
                "exclude",
                "threshold",
                "codes",
                "mode",
                "base_url",
                "api_key_env",
                "dtype",
                "device",
                "batch_size",
                "concurrency",
                "timeout_s",
            }
        ),
        f"content safety (S1-S14): Llama Guard when a model is configured (`model` or {GUARD_MODEL_ENV}), "
        "else Purple's offline classifier",
    ),
    "alignment": Entry(
        _alignment,
        frozenset({"model", "base_url", "api_key_env", "timeout_s", "max_tokens"}),
        "asks a chat model whether an agent's latest action serves the user's goal",
        off_reason=f"no model configured (set detectors.alignment.model or {ALIGNMENT_MODEL_ENV})",
    ),
}

# Detectors that scan a size-capped message once with RE2 or a character class: linear time, well under a
# millisecond for a chat message. The pipeline runs them in the calling thread instead of handing them to a worker.
INLINE = frozenset({"hidden_unicode", "regex", "secrets", "pii"})


def runs_inline(use: str, options: dict[str, Any]) -> bool:
    """True for the cheap detectors above, and for Code Shield when its semgrep tier is off."""
    return use in INLINE or (use == "code_shield" and options.get("semgrep") is False)


_shared: dict[tuple[str, str], Detector] = {}
_shared_lock = threading.Lock()


def build(use: str, options: dict[str, Any]) -> Detector | None:
    """Build registry detector `use` with `options`; shared kinds are built once per process per options."""
    entry = DETECTORS[use]
    if not entry.shared:
        return entry.build(dict(options))
    key = (use, json.dumps(options, sort_keys=True, default=str))
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = entry.build(dict(options))
            if found is not None:
                _shared[key] = found
        return found
