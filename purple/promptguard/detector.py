"""Prompt-injection and jailbreak classifiers behind the Detector protocol: Prompt Guard 1 / 2 and Purple's own model.

A classifier here is any transformers sequence-classification model with a tokenizer. What its classes mean is a
`LabelScheme`: which class probabilities add up to the score for text from the user, and which for third-party text
(tool output, retrieved documents, memory):

- Prompt Guard 1: BENIGN / INJECTION / JAILBREAK -> user text scores P(JAILBREAK), third-party text
  P(INJECTION) + P(JAILBREAK) (the model card's recommendation and Meta's recipes).
- Prompt Guard 2 and Purple's model: BENIGN / MALICIOUS -> P(MALICIOUS) for both.

Scoring: the text is normalised against evasions (`purple.promptguard.normalize`), tokenized once, cut into windows
of `window` tokens (512 by default, the models' context) that overlap by `overlap` tokens, and every window of every
text goes through the model in length-sorted batches; a text's score is the maximum over its windows, so an
injection hidden at the end of a long document counts as much as one at the start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from purple.promptguard.normalize import analyze, readable_text
from purple.types import BatchDetector, Conversation, Decision, Verdict
from purple.windows import window_starts

TextRole = Literal["user", "tool"]
THIRD_PARTY_ROLES = frozenset({"tool", "memory"})
MAX_TEXT_CHARS = 4_000_000
"""Longer texts are refused (an error verdict) rather than scored for minutes; 4 M characters is ~1 M tokens."""
MODEL_DIR = Path(__file__).resolve().parents[1] / "offline" / "model"
PG2_NAMES = ("meta-llama/Llama-Prompt-Guard-2-86M", "meta-llama/Llama-Prompt-Guard-2-22M")
PG1_NAMES = ("meta-llama/Prompt-Guard-86M",)


class PromptGuardError(RuntimeError):
    """The model could not be found or loaded (one readable line)."""


@dataclass(frozen=True, slots=True)
class LabelScheme:
    """Which classes make the score: for user text, and for third-party text."""

    names: tuple[str, ...]
    user: tuple[int, ...]
    third_party: tuple[int, ...]
    labels: tuple[str, ...] = ("injection",)
    """Verdict labels for a flagged text (user text, third-party text use the same)."""

    def indices(self, role: TextRole) -> tuple[int, ...]:
        return self.third_party if role == "tool" else self.user


PG1_SCHEME = LabelScheme(("benign", "injection", "jailbreak"), user=(2,), third_party=(1, 2), labels=("jailbreak",))
PG2_SCHEME = LabelScheme(("benign", "malicious"), user=(1,), third_party=(1,), labels=("injection",))


def scheme_for(version: int) -> LabelScheme:
    if version == 1:
        return PG1_SCHEME
    if version == 2:
        return PG2_SCHEME
    raise ValueError(f"unknown Prompt Guard version {version!r}; expected 1 or 2")


@dataclass(frozen=True, slots=True)
class Score:
    """One text's result: the score, the class probabilities of its worst window, and what was found."""

    score: float
    probs: tuple[float, ...]
    windows: int
    evasions: tuple[str, ...] = ()
    error: str | None = None


class InjectionDetector(BatchDetector):
    """A prompt-injection / jailbreak classifier as a Detector.

    `check_many` scores the last message of each conversation: as third-party text when its role is tool or memory,
    as user text otherwise. `score_texts(texts, role=...)` is the plain batched form. A text is blocked when its score
    is at least `threshold`; with `review_threshold` set, scores between it and `threshold` ask for human review.
    """

    name = "prompt_guard"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        scheme: LabelScheme = PG2_SCHEME,
        *,
        threshold: float = 0.5,
        third_party_threshold: float | None = None,
        review_threshold: float | None = None,
        temperature: float = 1.0,
        window: int = 512,
        overlap: int = 64,
        batch_size: int = 16,
        normalize: bool = True,
        name: str | None = None,
        model_name: str = "",
        max_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        for label, value in (("threshold", threshold), ("third_party_threshold", third_party_threshold),
                             ("review_threshold", review_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{label} must be in [0, 1], got {value}")
        if review_threshold is not None and review_threshold > threshold:
            raise ValueError("review_threshold must not exceed threshold")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self._prefix, self._suffix = special_affixes(tokenizer)
        specials = len(self._prefix) + len(self._suffix)
        if window <= specials + 1:
            raise ValueError(f"window must be more than {specials + 1} tokens, got {window}")
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and limit > 0 and window > limit:
            raise ValueError(f"window {window} is longer than the model's {limit} positions")
        if not 0 <= overlap < window - specials:
            raise ValueError(f"overlap must be in [0, {window - specials}), got {overlap}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        num_labels = getattr(getattr(model, "config", None), "num_labels", len(scheme.names))
        if num_labels != len(scheme.names):
            raise ValueError(f"the model has {num_labels} classes but the label scheme has {len(scheme.names)}")
        self.model = model
        self.tokenizer = tokenizer
        self.scheme = scheme
        self.threshold = threshold
        self.third_party_threshold = threshold if third_party_threshold is None else third_party_threshold
        self.review_threshold = review_threshold
        self.temperature = temperature
        self.window = window
        self.overlap = overlap
        self.batch_size = batch_size
        self.normalize = normalize
        self.max_chars = max_chars
        self.model_name = model_name
        if name:
            self.name = name
        self._specials = specials
        self._lock = threading.Lock()
        if self.model is not None:
            self.model.eval()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.model_name!r}, classes={self.scheme.names}, "
                f"threshold={self.threshold}, window={self.window})")

    # ------------------------------------------------------------------------------------------ scoring
    def score_texts(self, texts: Sequence[str], role: TextRole = "user") -> list[float]:
        """The score of each text in [0, 1] (maximum over its windows). Bad items raise ValueError."""
        results = self.score_details(texts, role)
        for index, result in enumerate(results):
            if result.error:
                raise ValueError(f"text {index}: {result.error}")
        return [r.score for r in results]

    def score_details(self, texts: Sequence[str], role: TextRole | Sequence[TextRole] = "user") -> list[Score]:
        """Per text: score, class probabilities of the worst window, window count, evasions found, or an error."""
        roles = [role] * len(texts) if isinstance(role, str) else list(role)
        if len(roles) != len(texts):
            raise ValueError("give one role per text")
        for r in roles:
            if r not in ("user", "tool"):
                raise ValueError(f"role must be 'user' or 'tool', got {r!r}")
        prepared: list[tuple[list[int], tuple[str, ...]] | str] = []
        for text in texts:
            prepared.append(self._prepare(text))
        windows: list[tuple[int, list[int]]] = []  # (text index, token ids with specials)
        for index, item in enumerate(prepared):
            if isinstance(item, str):
                continue
            for chunk in self._windows(item[0]):
                windows.append((index, chunk))
        probs = self._run(windows)
        best: dict[int, tuple[float, tuple[float, ...]]] = {}
        counts: dict[int, int] = {}
        for (index, _), p in zip(windows, probs):
            score = min(1.0, max(0.0, sum(p[i] for i in self.scheme.indices(roles[index]))))
            counts[index] = counts.get(index, 0) + 1
            if index not in best or score > best[index][0]:
                best[index] = (score, p)
        out: list[Score] = []
        for index, item in enumerate(prepared):
            if isinstance(item, str):
                out.append(Score(0.0, (), 0, error=item))
            else:
                score, p = best[index]
                out.append(Score(score, p, counts[index], item[1]))
        return out

    def _prepare(self, text: Any) -> tuple[list[int], tuple[str, ...]] | str:
        try:
            text = readable_text(text, self.max_chars)
        except ValueError as exc:
            return str(exc)
        evasions: tuple[str, ...] = ()
        if self.normalize:
            result = analyze(text)
            text, evasions = result.text, result.evasions
        return token_ids(self.tokenizer, text), evasions

    def _windows(self, ids: list[int]) -> list[list[int]]:
        body = self.window - self._specials
        return [self._prefix + ids[s : s + body] + self._suffix for s in window_starts(len(ids), body, self.overlap)]

    def _run(self, windows: list[tuple[int, list[int]]]) -> list[tuple[float, ...]]:
        import torch

        if not windows:
            return []
        order = sorted(range(len(windows)), key=lambda i: len(windows[i][1]))
        results: list[tuple[float, ...]] = [()] * len(windows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = next(self.model.parameters()).device
        # cap tokens per forward pass as well as rows: short prompts batch wide, 512-token windows batch narrow
        max_tokens = self.batch_size * 512
        with self._lock, torch.inference_mode():
            start = 0
            while start < len(order):
                end = start + 1
                while end < len(order) and end - start < max(self.batch_size, 1) * 4:
                    if (end - start + 1) * len(windows[order[end]][1]) > max_tokens:
                        break
                    end += 1
                batch = order[start:end]
                width = len(windows[batch[-1]][1])
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = windows[i][1]
                    ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, : len(seq)] = 1
                logits = self.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
                probs = torch.softmax(logits / self.temperature, dim=-1).cpu().tolist()
                for row, i in enumerate(batch):
                    results[i] = tuple(probs[row])
                start = end
        return results

    # ------------------------------------------------------------------------------------------ Detector API
    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        texts: list[str] = []
        roles: list[TextRole] = []
        for conversation in conversations:
            messages = list(conversation)
            last = messages[-1] if messages else None
            texts.append(last.content if last is not None else "")
            roles.append("tool" if last is not None and last.role in THIRD_PARTY_ROLES else "user")
        details = self.score_details(texts, roles)
        return [self.verdict_for(d, r) for d, r in zip(details, roles)]

    def verdict(self, text: str, role: TextRole = "user") -> Verdict:
        return self.verdict_for(self.score_details([text], role)[0], role)

    def verdict_for(self, result: Score, role: TextRole) -> Verdict:
        """The Verdict for one `score_details` result: block / review / allow by the role's threshold."""
        if result.error:
            return Verdict(Decision.ALLOW, 0.0, self.name, reason="not classified", error=result.error)
        threshold = self.third_party_threshold if role == "tool" else self.threshold
        score = result.score
        evasion_note = f"; evasions undone: {', '.join(result.evasions)}" if result.evasions else ""
        where = "third-party text" if role == "tool" else "user text"
        if score >= threshold:
            decision = Decision.BLOCK
        elif self.review_threshold is not None and score >= self.review_threshold:
            decision = Decision.HUMAN_REVIEW
        else:
            decision = Decision.ALLOW
        if decision == Decision.ALLOW:
            return Verdict(decision, score, self.name, reason=f"{where}: score {score:.3f} below {threshold}"
                           + evasion_note)
        labels = self.scheme.labels
        if self.scheme is PG1_SCHEME or self.scheme.names == PG1_SCHEME.names:
            labels = ("injection",) if role == "tool" and result.probs[1] > result.probs[2] else ("jailbreak",)
        reason = f"{where}: {labels[0]} score {score:.3f} (threshold {threshold}, {result.windows} window(s))"
        return Verdict(decision, score, self.name, labels=labels, reason=reason + evasion_note)

    def close(self) -> None:  # the model lives as long as the detector; nothing to release explicitly
        return None


def token_ids(tokenizer: Any, text: str, add_special_tokens: bool = False) -> list[int]:
    """Token ids of `text` from a transformers tokenizer or a `tokenizers.Tokenizer` (Purple's offline model)."""
    if callable(tokenizer):
        encoded = tokenizer(text, add_special_tokens=add_special_tokens, truncation=False, verbose=False)
        return list(encoded["input_ids"])
    return list(tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)


def special_affixes(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text ([CLS] ... [SEP] for BERT and DeBERTa)."""
    probe = "hello"
    plain = token_ids(tokenizer, probe)
    full = token_ids(tokenizer, probe, add_special_tokens=True)
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise ValueError("cannot tell where the tokenizer puts its special tokens")


# ---------------------------------------------------------------------------------------------- loading
def _load_hf(path: str, device: str | None) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise PromptGuardError(
            f"Prompt Guard needs torch and transformers ({exc.name} is missing): pip install 'purple[local]'"
        ) from None
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, dtype=torch.float32, use_safetensors=True  # never a pickle
        )
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PromptGuardError(f"cannot load a classifier from {path}: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def resolve_model_path(name_or_path: str | os.PathLike[str]) -> str:
    """A local folder, the folder LlamaFirewall saves Prompt Guard 2 to, or a Hugging Face id in the local cache.

    Never downloads: an id that is not in the cache is an error that says how to get it.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    if "/" in text and not path.exists() and not text.startswith((".", "/", "~")):
        hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")).expanduser()
        firewall_copy = hf_home / text.replace("/", "--")
        if firewall_copy.is_dir():
            return str(firewall_copy)
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(text, local_files_only=True)
        except Exception:  # noqa: BLE001 - any miss means "not in the cache"
            raise PromptGuardError(
                f"{text} is not in the local Hugging Face cache ({hf_home}); download it once with "
                f"`huggingface-cli download {text}` (gated: accept the license first) or pass a local folder"
            ) from None
    raise PromptGuardError(f"no model folder at {text}")


def _guess_version(model: Any, hint: str) -> int:
    lowered = hint.lower()
    if "prompt-guard-2" in lowered or "prompt_guard_2" in lowered:
        return 2
    num_labels = getattr(model.config, "num_labels", None)
    if num_labels == 3:
        return 1
    if num_labels == 2:
        return 2
    raise PromptGuardError(f"cannot tell the Prompt Guard version of {hint} ({num_labels} classes); pass version=1|2")


class PromptGuard(InjectionDetector):
    """Meta's Prompt Guard 1 (86M) or 2 (86M, 22M), from a local folder or the Hugging Face cache."""

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = PG2_NAMES[0],
        version: int | None = None,
        *,
        device: str | None = None,
        **options: Any,
    ) -> PromptGuard:
        path = resolve_model_path(name_or_path)
        model, tokenizer = _load_hf(path, device)
        version = version or _guess_version(model, str(name_or_path))
        scheme = scheme_for(version)
        if model.config.num_labels != len(scheme.names):
            raise PromptGuardError(
                f"{name_or_path} has {model.config.num_labels} classes; Prompt Guard {version} has {len(scheme.names)}"
            )
        options.setdefault("threshold", 0.9 if version == 2 else 0.5)
        detector = cls(model, tokenizer, scheme, model_name=str(name_or_path), **options)
        detector.version = version
        return detector

    version: int = 2


# ------------------------------------------------------------------------------------- Purple's own model
class OfflineInjectionDetector(InjectionDetector):
    """Purple's shipped injection head on the shared offline encoder (purple.offline), as an InjectionDetector.

    Windows, normalisation, thresholds and verdicts are InjectionDetector's; scoring a window is the encoder's
    mean-pooled vector through the `injection` head (a sigmoid, reported as benign / malicious probabilities). The
    encoder takes one window at a time (see `SharedEncoder.embed`), so `batch_size` changes nothing here."""

    def __init__(self, encoder: Any, **options: Any) -> None:
        self.encoder = encoder
        head = encoder.settings.get("heads", {}).get("injection")
        if head is None:
            raise PromptGuardError(f"{encoder.folder} has no injection head")
        defaults = {"threshold": head.get("threshold", 0.5), "window": encoder.window, "overlap": encoder.overlap,
                    "name": "purple_injection", "model_name": encoder.settings.get("name", "")}
        defaults.update(options)
        super().__init__(None, encoder.tokenizer, PG2_SCHEME, **defaults)

    def _run(self, windows: list[tuple[int, list[int]]]) -> list[tuple[float, ...]]:
        if not windows:
            return []
        ids = [ids for _, ids in windows]
        vectors = self.encoder.embed(ids)
        scores = self.encoder.head_scores("injection", vectors, ids, self.temperature)[:, 0].tolist()
        return [(1.0 - p, p) for p in scores]


def load_detector(path: str | os.PathLike[str] = MODEL_DIR, *, device: str | None = None, **options: Any) -> InjectionDetector:
    """Purple's offline model folder (`purple.json` with heads) or a Prompt Guard / classifier folder as a detector.

    Folders without `purple.json` are taken for Prompt Guard (see `PromptGuard.from_pretrained`).
    """
    from purple.offline.encoder import OfflineModelError, read_settings, shared_encoder

    folder = Path(resolve_model_path(path))
    if not (folder / "purple.json").is_file():
        return PromptGuard.from_pretrained(folder, **options)
    try:
        if "heads" not in read_settings(folder):
            raise PromptGuardError(f"{folder}: purple.json names no heads (not a Purple offline model)")
        return OfflineInjectionDetector(shared_encoder(folder), **options)
    except OfflineModelError as exc:
        raise PromptGuardError(str(exc)) from None


_DEFAULT: InjectionDetector | None = None
_DEFAULT_LOCK = threading.Lock()


def default_detector() -> InjectionDetector:
    """Purple's shipped offline injection / jailbreak detector, loaded once per process and shared.

    Cheap to call again (the same object comes back) and safe from several threads (loading and scoring take
    locks). Needs onnxruntime, tokenizers, safetensors and numpy (`purple[offline]`), never torch or the network.
    """
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = load_detector(MODEL_DIR)
    return _DEFAULT


def is_model_available(path: Path = MODEL_DIR) -> bool:
    from purple.offline.encoder import is_model_available as available

    return available(path)
