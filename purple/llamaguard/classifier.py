"""Llama Guard as a Detector: P(unsafe) from the first answer token, category codes only where they are needed.

Local models (transformers, vLLM) score every conversation in batched forward passes with no generation loop;
only conversations found unsafe are continued after 'unsafe' to read their category codes, and only when codes
are asked for. API models are asked through the chat endpoint (the server applies the model's template) or the
raw completions endpoint (Purple renders the prompt, so custom categories are exact), with log-probabilities
when the server gives them and the answer text otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from purple.llamaguard.formats import GuardFormat, default_taxonomy, detect_version, get_format, render, to_turns
from purple.llamaguard.parser import GuardAnswer, answer_probs, parse_answer
from purple.llamaguard.taxonomy import Taxonomy, load_taxonomy
from purple.models.base import FirstTokenScorer, GenerationParams, ModelError, PromptModel
from purple.models.loader import load_model
from purple.models.sync import run_sync
from purple.types import BatchDetector, Completion, Conversation, Decision, Message, Verdict

Mode = Literal["auto", "chat", "completions"]
MAX_CONVERSATION_CHARS = 200_000
CODE_TOKENS = 40
"""Tokens allowed for the codes line ('S1,S10' is a few tokens; 14 codes fit)."""
_WORDS = ("safe", "unsafe")


@dataclass
class _Item:
    """One conversation on its way through: the rendered prompt, or why there is none."""

    prompt: str = ""
    turns: list[Any] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    taxonomy: Taxonomy | None = None
    error: str | None = None
    score: float | None = None
    answer: GuardAnswer | None = None
    note: str = ""


class LlamaGuard(BatchDetector):
    """Llama Guard 1, 2, 3 (1B, 8B, 11B-Vision) or 4 (12B) over any backend.

    `model` is a spec (`hf:...`, `openai:...`, `ollama:...`, `vllm:...`) or a loaded model. `version` is guessed
    from the model's name when not given. `taxonomy` (a built-in name, a YAML path or a Taxonomy) replaces the
    version's categories; `categories` keeps only those codes and `exclude` drops codes. A conversation is unsafe
    when P(unsafe) >= `threshold`; its codes are generated only when `codes` is true.
    """

    name = "llama_guard"

    def __init__(
        self,
        model: str | Any,
        *,
        version: str | None = None,
        taxonomy: str | Path | Taxonomy | None = None,
        categories: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        threshold: float = 0.5,
        codes: bool = True,
        mode: Mode = "auto",
        with_policy: bool = False,
        top_logprobs: int = 20,
        **model_options: Any,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if mode not in ("auto", "chat", "completions"):
            raise ValueError(f"unknown mode {mode!r}; expected auto, chat or completions")
        self.model = load_model(model, **model_options) if isinstance(model, str) else model
        self.local = isinstance(self.model, FirstTokenScorer)
        if self.local and mode != "auto":
            raise ValueError(f"mode {mode!r} is for API models; {self.model.name} is scored locally")
        version = version or _guess_version(self.model)
        if version is None:
            raise ValueError(f"cannot tell the Llama Guard version of {self.model.name}; pass a version (e.g. 3-8b)")
        self.format: GuardFormat = get_format(version)
        self.threshold = threshold
        self.codes = codes
        self.with_policy = with_policy
        self.top_logprobs = top_logprobs
        self.custom = taxonomy is not None or categories is not None or bool(exclude) or with_policy
        base = load_taxonomy(taxonomy) if isinstance(taxonomy, str | Path) else taxonomy
        text_taxonomy = (base or default_taxonomy(self.format)).select(categories, exclude)
        image_taxonomy = text_taxonomy
        if base is None and not self.format.code_interpreter_with_images and text_taxonomy.get("S14"):
            image_taxonomy = text_taxonomy.select(exclude=["S14"])
        self.taxonomies = {False: text_taxonomy, True: image_taxonomy}
        self.excluded = tuple(c.strip().upper() for c in exclude)
        self.mode: str = "local" if self.local else (mode if mode != "auto" else ("completions" if self.custom else "chat"))

    def __repr__(self) -> str:
        return f"LlamaGuard(model={self.model.name!r}, version={self.format.version!r}, mode={self.mode!r})"

    @property
    def taxonomy(self) -> Taxonomy:
        return self.taxonomies[False]

    # ------------------------------------------------------------------------------------------ Detector API
    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        items = self._prepare(conversations)
        if self.local:
            self._score_local(items)
        else:
            run_sync(self._score_api(items))
        return [self._verdict(item) for item in items]

    async def acheck_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        if self.local:
            return await asyncio.to_thread(self.check_many, list(conversations))
        items = self._prepare(conversations)
        await self._score_api(items)
        return [self._verdict(item) for item in items]

    def render(self, conversation: Conversation) -> str:
        """The exact prompt this detector sends for a conversation (before the answer starts)."""
        item = self._prepare([conversation])[0]
        if item.error:
            raise ValueError(item.error)
        return item.prompt

    def close(self) -> None:
        self.model.close()

    # ------------------------------------------------------------------------------------------ preparation
    def _prepare(self, conversations: Sequence[Conversation]) -> list[_Item]:
        items = []
        for conversation in conversations:
            item = _Item()
            try:
                size = sum(len(m.content) for m in conversation)
                if size > MAX_CONVERSATION_CHARS:
                    raise ValueError(f"conversation is {size:,} characters; the limit is {MAX_CONVERSATION_CHARS:,}")
                item.turns = to_turns(conversation)
                item.images = [ref for turn in item.turns for ref in turn.images]
                item.taxonomy = self.taxonomies[bool(item.images)]
                item.prompt = render(self.format, item.turns, item.taxonomy, self.with_policy)
            except (ValueError, TypeError, AttributeError) as exc:
                item.error = str(exc)
            items.append(item)
        return items

    # ------------------------------------------------------------------------------------------ local models
    def _score_local(self, items: list[_Item]) -> None:
        todo = [it for it in items if it.error is None]
        if not todo:
            return
        scorer: Any = self.model
        probs = scorer.first_token_probs(
            [it.prompt + self.format.answer_prefix for it in todo], _WORDS, [it.images for it in todo]
        )
        for item, result in zip(todo, probs):
            if result.error:
                item.error = result.error
            else:
                item.score = min(1.0, max(0.0, result.probs["unsafe"]))
        flagged = [it for it in todo if it.error is None and it.score is not None and it.score >= self.threshold]
        if self.codes and flagged:
            continued = scorer.complete(
                [it.prompt + self.format.answer_prefix + "unsafe\n" for it in flagged],
                GenerationParams(max_tokens=CODE_TOKENS),
                [it.images for it in flagged],
            )
            self._read_codes(flagged, continued)

    def _read_codes(self, flagged: list[_Item], continued: Sequence[Completion]) -> None:
        for item, completion in zip(flagged, continued):
            if completion.error:
                item.note = f"category codes not read: {completion.error}"
            else:
                item.answer = parse_answer("unsafe\n" + completion.text, item.taxonomy.codes, self.excluded)  # type: ignore[union-attr]

    # -------------------------------------------------------------------------------------------- API models
    async def _score_api(self, items: list[_Item]) -> None:
        todo = [it for it in items if it.error is None]
        if not todo:
            return
        if self.mode == "chat":
            await self._score_chat(todo)
        else:
            await self._score_completions(todo)
        flagged = [
            it
            for it in todo
            if it.error is None and self._is_flagged(it) and not (it.answer and it.answer.unsafe is not None)
        ]
        if self.codes and flagged and isinstance(self.model, PromptModel) and self.mode == "completions":
            continued = await self.model.acomplete(
                [self._api_prompt(it) + "unsafe\n" for it in flagged], GenerationParams(max_tokens=CODE_TOKENS)
            )
            self._read_codes(flagged, continued)

    def _api_prompt(self, item: _Item) -> str:
        """Servers add their own begin-of-text token, so the rendered one is left out."""
        return item.prompt.removeprefix(self.format.bos) + self.format.answer_prefix

    async def _score_completions(self, todo: list[_Item]) -> None:
        if not isinstance(self.model, PromptModel):
            for item in todo:
                item.error = f"{self.model.name} has no raw completions endpoint; use mode 'chat'"
            return
        runnable = []
        for item in todo:
            if item.images:
                item.error = "the raw completions endpoint takes no images; use mode 'chat' for images"
            else:
                runnable.append(item)
        params = GenerationParams(max_tokens=CODE_TOKENS if self.codes else 1, top_logprobs=self.top_logprobs)
        done = await self.model.acomplete([self._api_prompt(it) for it in runnable], params)
        for item, completion in zip(runnable, done):
            self._read_api_answer(item, completion, position=0)

    async def _score_chat(self, todo: list[_Item]) -> None:
        extra: dict[str, object] = {}
        if self.custom:  # vLLM servers pass these to the model's chat template; others may reject them
            extra["chat_template_kwargs"] = {
                "categories": {c.code: f"{c.name}." for c in self.taxonomy.categories},
                "excluded_category_keys": [],
            }
        params = GenerationParams(max_tokens=CODE_TOKENS, top_logprobs=self.top_logprobs, extra=extra)
        conversations = [
            [Message("user" if t.role == "User" else "assistant", t.text, t.images) for t in item.turns]
            for item in todo
        ]
        done = await self.model.agenerate(conversations, params)
        for item, completion in zip(todo, done):
            self._read_api_answer(item, completion, position=None)

    def _read_api_answer(self, item: _Item, completion: Completion, position: int | None) -> None:
        """Score from log-probabilities at the answer's first word; fall back on the text when there are none."""
        if completion.error:
            item.error = completion.error
            return
        assert item.taxonomy is not None
        answer = parse_answer(completion.text, item.taxonomy.codes, self.excluded)
        item.answer = answer if answer.parsed else None
        steps = completion.logprobs or ()
        if position is None:
            position = _first_word_position(completion)
        probs = answer_probs(steps[position]) if position is not None and position < len(steps) else None
        if probs is not None:
            item.score = probs[1]
        elif answer.parsed:
            item.score = 1.0 if answer.unsafe or answer.excluded_codes else 0.0
            item.note = "score from the answer text (the server gave no log-probabilities for it)"
        else:
            item.error = f"unreadable answer from the model: {completion.text[:80]!r}"

    # ------------------------------------------------------------------------------------------------ verdict
    def _is_flagged(self, item: _Item) -> bool:
        return item.score is not None and item.score >= self.threshold

    def _verdict(self, item: _Item) -> Verdict:
        if item.error is not None or item.score is None:
            return Verdict(
                Decision.ALLOW, 0.0, self.name, reason="not classified", error=item.error or "not scored"
            )
        score = item.score
        answer = item.answer
        notes = [item.note] if item.note else []
        if not self._is_flagged(item):
            reason = f"safe (P(unsafe)={score:.3f})"
            return Verdict(Decision.ALLOW, score, self.name, reason="; ".join([reason, *notes]))
        if answer is not None and answer.unsafe is False and answer.excluded_codes:
            reason = f"unsafe only in excluded categories {', '.join(answer.excluded_codes)} (P(unsafe)={score:.3f})"
            return Verdict(Decision.ALLOW, score, self.name, reason="; ".join([reason, *notes]))
        labels: tuple[str, ...] = ()
        if answer is not None and answer.unsafe:
            labels = answer.codes + answer.unknown_codes
            named = [f"{c} {item.taxonomy.get(c).name}" for c in answer.codes]  # type: ignore[union-attr]
            if answer.unknown_codes:
                notes.append(f"unknown category code(s) from the model: {', '.join(answer.unknown_codes)}")
            if answer.excluded_codes:
                notes.append(f"excluded code(s) set aside: {', '.join(answer.excluded_codes)}")
            if answer.unreadable:
                notes.append(f"unreadable category text from the model: {answer.unreadable!r}")
            what = ", ".join(named) if named else "no known category"
        else:
            what = "categories not asked for" if not self.codes else "no category given"
        reason = f"unsafe: {what} (P(unsafe)={score:.3f})"
        return Verdict(Decision.BLOCK, score, self.name, labels=labels, reason="; ".join([reason, *notes]))


def _first_word_position(completion: Completion) -> int | None:
    """The first generated position whose token is not whitespace (the answer opens with a blank line)."""
    steps = completion.logprobs or ()
    for n, step in enumerate(steps):
        if completion.tokens is not None and n < len(completion.tokens):
            chosen = completion.tokens[n]
        else:
            chosen = max(step, key=step.get) if step else ""  # type: ignore[arg-type]
        if chosen.strip():
            return n
    return None


def _guess_version(model: Any) -> str | None:
    name = str(getattr(model, "path", "") or "") + " " + str(getattr(model, "name", ""))
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", config)
    return detect_version(
        name.strip(),
        model_type=str(getattr(config, "model_type", "") or ""),
        hidden_size=int(getattr(text_config, "hidden_size", 0) or 0),
    )


def load_guard(spec: str, **options: Any) -> LlamaGuard:
    """Build a LlamaGuard from a spec; configuration and loading problems are one ModelError line."""
    try:
        return LlamaGuard(spec, **options)
    except ModelError:
        raise
    except ValueError as exc:
        raise ModelError(str(exc)) from None
