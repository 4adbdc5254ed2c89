"""Purple's offline content-safety classifier as a Detector: P(unsafe) and MLCommons hazard codes, like Llama Guard.

It reads the same conversations Llama Guard does and answers in the same shape: a Verdict whose score is P(unsafe)
and whose labels are S-codes of the taxonomy (`taxonomies/mlcommons.yaml` unless another is given). It judges one
message: the last one that is not a system message, so the agent's response when the conversation ends with the
agent, else the latest user (or tool) message.

Scoring: the text is normalised against evasions (`purple.promptguard.normalize`, as for the injection head), cut
into windows (the model's `window` / `overlap`) and encoded once by the content model's frozen encoder
(`purple.offline`, CONTENT_MODEL_DIR); the `content` head gives P(unsafe) and one score per hazard S1..S14 for every
window, and a text takes the maximum of each over its windows.

Selecting categories (`categories=`, `exclude=`, or a taxonomy with fewer codes) narrows what counts:

    score = P(unsafe)                                  when every hazard the head scores is selected
    score = min(P(unsafe), max over selected k of P(Sk))   otherwise

so a text that is unsafe only in categories left out scores low and is allowed (Llama Guard allows an answer that
names only excluded codes). The decision is BLOCK at `threshold`, HUMAN_REVIEW at `review_threshold` when one is set.
Labels, for a flagged text only: the selected codes whose P(Sk) reaches `category_threshold`, highest first, or the
single highest selected code when none does.

An agent's response that refuses (`purple.refusal`'s reader: "I can't help with making weapons ...") is safe
whatever topic it names, as under Llama Guard's policy: it is allowed and its score capped at REFUSAL_SCORE_CAP.

A custom taxonomy works by code: codes S1..S14 (renamed or reworded) are scored as those hazards; a code the head
has no output for cannot be scored offline and is an error at construction (use Llama Guard for custom hazards).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from purple.llamaguard.taxonomy import Taxonomy, TaxonomyError, load_taxonomy
from purple.offline.encoder import (
    CONTENT_MODEL_DIR,
    OfflineModelError,
    SharedEncoder,
    is_model_available,
    read_settings,
)
from purple.offline.encoder import shared_encoder as _shared_encoder
from purple.promptguard.normalize import normalize, readable_text
from purple.refusal import read_refusal
from purple.types import BatchDetector, Conversation, Decision, Verdict

HEAD = "content"
UNSAFE = "unsafe"
MAX_TEXT_CHARS = 200_000
"""Longer messages are refused (an error verdict), as Llama Guard refuses longer conversations."""
MODEL_NAMES = ("purple-content", "purple_content")
REFUSAL_SCORE_CAP = 0.05
"""The highest score an agent's refusal gets (a refusal is safe, but the score stays graded for AUPRC)."""
"""What `purple guard --model` and PURPLE_GUARD_MODEL accept for this classifier (optionally `NAME:FOLDER`)."""


@dataclass(frozen=True, slots=True)
class ContentScore:
    """One text's scores: P(unsafe), P(Sk) for every hazard code the head has, the window count, or an error."""

    unsafe: float
    categories: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    error: str | None = None


class ContentClassifier(BatchDetector):
    """The `content` head of an offline model folder (the shipped one by default) as a Detector.

    `taxonomy` (a built-in name, a YAML path or a Taxonomy; default mlcommons), `categories` and `exclude` select
    codes as for Llama Guard. `threshold` and `category_threshold` default to the model's own (purple.json).
    """

    name = "purple_content"

    def __init__(
        self,
        folder: str | os.PathLike[str] = CONTENT_MODEL_DIR,
        *,
        encoder: SharedEncoder | None = None,
        taxonomy: str | Path | Taxonomy | None = None,
        categories: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        threshold: float | None = None,
        review_threshold: float | None = None,
        category_threshold: float | None = None,
        max_chars: int = MAX_TEXT_CHARS,
        name: str | None = None,
    ) -> None:
        self.encoder = encoder if encoder is not None else _shared_encoder(folder)
        if HEAD not in self.encoder.heads:
            raise OfflineModelError(f"{self.encoder.folder} has no {HEAD!r} head; it is not a content model")
        self.outputs = self.encoder.head_outputs(HEAD)
        if not self.outputs or self.outputs[0] != UNSAFE or len(self.outputs) != len(set(self.outputs)):
            raise OfflineModelError(f"{self.encoder.folder}: the content head's outputs must be 'unsafe' then "
                                    f"distinct hazard codes, got {self.outputs}")
        settings = self.encoder.settings.get("heads", {}).get(HEAD, {})
        self.threshold = float(settings.get("threshold", 0.5) if threshold is None else threshold)
        self.category_threshold = float(
            settings.get("category_threshold", 0.5) if category_threshold is None else category_threshold)
        self.review_threshold = review_threshold
        for label, value in (("threshold", self.threshold), ("category_threshold", self.category_threshold),
                             ("review_threshold", review_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if review_threshold is not None and review_threshold > self.threshold:
            raise ValueError("review_threshold must not exceed threshold")
        if max_chars < 1:
            raise ValueError("max_chars must be at least 1")
        self.max_chars = max_chars
        if name:
            self.name = name
        base = load_taxonomy(taxonomy) if isinstance(taxonomy, str | Path) else taxonomy
        self.taxonomy: Taxonomy = (base or load_taxonomy("mlcommons")).select(categories, exclude)
        hazards = self.outputs[1:]
        unknown = [c for c in self.taxonomy.categories if c.code.upper() not in hazards]
        if unknown:
            named = ", ".join(f"{c.code} ({c.name})" for c in unknown)
            raise TaxonomyError(
                f"the offline content classifier scores only the hazards {hazards[0]}-{hazards[-1]} of the MLCommons "
                f"taxonomy; {named} in {self.taxonomy.name} cannot be scored offline: use Llama Guard for custom "
                "hazards (purple guard --model SPEC --categories FILE)"
            )
        self.selected = tuple(c.code for c in self.taxonomy.categories)
        selected_upper = {c.upper() for c in self.selected}
        self.left_out = tuple(h for h in hazards if h not in selected_upper)
        """Hazards the head scores that this selection leaves out (empty: the score is plain P(unsafe))."""

    def __repr__(self) -> str:
        return (f"ContentClassifier(folder={str(self.encoder.folder)!r}, categories={list(self.selected)}, "
                f"threshold={self.threshold})")

    # ------------------------------------------------------------------------------------------ scoring
    def score_details(self, texts: Sequence[Any]) -> list[ContentScore]:
        """Per text: P(unsafe) and P(Sk) (maximum over its windows), or an error for a text that cannot be read."""
        prepared: list[list[list[int]] | str] = [self._prepare(text) for text in texts]
        flat = [window for item in prepared if not isinstance(item, str) for window in item]
        rows = self.encoder.head_scores(HEAD, self.encoder.embed(flat), flat).tolist() if flat else []
        out: list[ContentScore] = []
        start = 0
        for item in prepared:
            if isinstance(item, str):
                out.append(ContentScore(0.0, error=item))
                continue
            block = rows[start : start + len(item)]
            start += len(item)
            best = [min(1.0, max(0.0, max(column))) for column in zip(*block)]
            out.append(ContentScore(best[0], dict(zip(self.outputs[1:], best[1:])), len(item)))
        return out

    def score_texts(self, texts: Sequence[str]) -> list[float]:
        """P(unsafe) of each text (no selection applied). A text that cannot be read raises ValueError."""
        results = self.score_details(texts)
        for index, result in enumerate(results):
            if result.error:
                raise ValueError(f"text {index}: {result.error}")
        return [r.unsafe for r in results]

    def _prepare(self, text: Any) -> list[list[int]] | str:
        """The text's token windows, or why it cannot be scored."""
        try:
            text = readable_text(text, self.max_chars)
        except ValueError as exc:
            return str(exc)
        return self.encoder.windows(normalize(text))

    # ------------------------------------------------------------------------------------------ Detector API
    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        texts: list[Any] = []
        roles: list[str | None] = []
        errors: list[str | None] = []
        for conversation in conversations:
            text, role, error = judged_text(conversation)
            texts.append(text)
            roles.append(role)
            errors.append(error)
        todo = [i for i, e in enumerate(errors) if e is None]
        scores = dict(zip(todo, self.score_details([texts[i] for i in todo])))
        verdicts = []
        for i in range(len(texts)):
            if errors[i] is not None:
                verdicts.append(self._error(errors[i] or ""))
            elif roles[i] == "assistant" and isinstance(texts[i], str) and not scores[i].error:
                verdicts.append(self.response_verdict(scores[i], texts[i]))
            else:
                verdicts.append(self.verdict_for(scores[i]))
        return verdicts

    def response_verdict(self, result: ContentScore, response: str) -> Verdict:
        """An agent's turn: a response that refuses (purple.refusal's reader) is safe, as under Llama Guard's
        policy, whatever topic it names; its score is capped at REFUSAL_SCORE_CAP. Others as `verdict_for`."""
        reading = read_refusal(response)
        if not reading.refused or not response.strip():
            return self.verdict_for(result)
        score = min(result.unsafe, REFUSAL_SCORE_CAP)
        return Verdict(Decision.ALLOW, score, self.name,
                       reason=f"safe: the response refuses ({reading.cue!r}; model P(unsafe)={result.unsafe:.3f})")

    def verdict_for(self, result: ContentScore) -> Verdict:
        """The Verdict for one `score_details` result under this detector's selection and thresholds."""
        if result.error:
            return self._error(result.error)
        p_unsafe = result.unsafe
        selected = {code: result.categories.get(code.upper(), 0.0) for code in self.selected}
        score = min(p_unsafe, max(selected.values())) if self.left_out else p_unsafe
        if score >= self.threshold:
            decision = Decision.BLOCK
        elif self.review_threshold is not None and score >= self.review_threshold:
            decision = Decision.HUMAN_REVIEW
        else:
            decision = Decision.ALLOW
        if decision is Decision.ALLOW:
            if p_unsafe >= self.threshold:  # unsafe, but only in hazards this selection leaves out
                others = sorted(self.left_out, key=lambda c: -result.categories.get(c, 0.0))
                high = [c for c in others if result.categories.get(c, 0.0) >= self.category_threshold] or others[:1]
                reason = (f"unsafe only in categories not selected ({', '.join(high)}); "
                          f"score {score:.3f} (P(unsafe)={p_unsafe:.3f})")
            else:
                reason = f"safe (P(unsafe)={p_unsafe:.3f})"
            return Verdict(decision, score, self.name, reason=reason)
        order = sorted(self.selected, key=lambda c: (-selected[c], self.selected.index(c)))
        labels = [c for c in order if selected[c] >= self.category_threshold] or order[:1]
        named = ", ".join(f"{c} {self._category_name(c)} ({selected[c]:.2f})" for c in labels)
        what = "unsafe" if decision is Decision.BLOCK else "for review"
        reason = f"{what}: {named} (P(unsafe)={p_unsafe:.3f}, {result.windows} window(s))"
        return Verdict(decision, score, self.name, labels=tuple(labels), reason=reason)

    def _category_name(self, code: str) -> str:
        category = self.taxonomy.get(code)
        return category.name if category is not None else code

    def _error(self, error: str) -> Verdict:
        return Verdict(Decision.ALLOW, 0.0, self.name, reason="not classified", error=error)

    def close(self) -> None:  # the encoder is shared by every detector on the folder; nothing to release here
        return None


def judged_text(conversation: Any) -> tuple[Any, str | None, str | None]:
    """(content, role, None) of the message this classifier judges, or (None, None, why there is none)."""
    if isinstance(conversation, str | bytes | bytearray):
        return None, None, f"expected a conversation (a list of messages), got {type(conversation).__name__}"
    try:
        messages = list(conversation)
    except TypeError:
        return None, None, f"expected a conversation (a list of messages), got {type(conversation).__name__}"
    for message in reversed(messages):
        role = getattr(message, "role", None)
        if role is None or not hasattr(message, "content"):
            return None, None, f"expected messages, got {type(message).__name__}"
        if role != "system":
            return message.content, role, None
    return None, None, "nothing to classify: the conversation has no user or assistant message"


# ---------------------------------------------------------------------------------------------- loading
def content_model_folder(spec: str) -> Path | None:
    """The model folder a `--model` spec names when it names this classifier (`purple-content[:FOLDER]`), else None."""
    head, _, rest = spec.strip().partition(":")
    if head.strip().lower() not in MODEL_NAMES:
        return None
    return Path(rest.strip()).expanduser() if rest.strip() else CONTENT_MODEL_DIR


def is_content_model_available(folder: Path = CONTENT_MODEL_DIR) -> bool:
    """True when `folder` is an offline model with a content head."""
    if not is_model_available(folder):
        return False
    try:
        return HEAD in read_settings(folder).get("heads", {})
    except OfflineModelError:
        return False


_DEFAULT: ContentClassifier | None = None
_DEFAULT_LOCK = threading.Lock()


def default_content_detector() -> ContentClassifier:
    """The shipped offline content classifier (all hazards, the model's thresholds), loaded once per process.

    Needs onnxruntime, tokenizers, safetensors and numpy (`purple[offline]`), never torch or the network;
    OfflineModelError when the shipped model is missing or has no content head."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                if not is_model_available(CONTENT_MODEL_DIR):
                    raise OfflineModelError(f"the offline content model is not installed ({CONTENT_MODEL_DIR} is "
                                            "missing or incomplete)")
                _DEFAULT = ContentClassifier(CONTENT_MODEL_DIR)
    return _DEFAULT
