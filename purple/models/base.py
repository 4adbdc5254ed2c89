"""What every model backend offers: the ChatModel protocol, generation parameters and backend errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from purple.types import Completion, Conversation


class ModelError(Exception):
    """A model could not be loaded or reached: a bad spec, a missing path, an unreachable server.

    The message is one readable line, free of API keys, fit to show a user as it is.
    """


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """How to generate. `top_logprobs` > 0 asks for that many alternatives per generated token."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    top_logprobs: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    """Backend-specific request fields (e.g. `chat_template_kwargs` for vLLM servers)."""


@runtime_checkable
class ChatModel(Protocol):
    """A model that answers conversations. Batched first; one failed item is an error on that Completion."""

    name: str

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        ...

    async def agenerate(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[Completion]:
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class PromptModel(Protocol):
    """A model that also continues raw text prompts (already formatted, special tokens included)."""

    def complete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        ...

    async def acomplete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        ...


@dataclass(frozen=True, slots=True)
class TokenProbs:
    """First-token probabilities of a few answer words for one prompt, or the error that prevented them."""

    probs: dict[str, float]
    error: str | None = None


@runtime_checkable
class FirstTokenScorer(Protocol):
    """A local model that scores the first generated token in one forward pass (no generation loop).

    `probs[word]` is the probability that the next token starts `word` (with or without a leading space).
    """

    def first_token_probs(
        self, prompts: Sequence[str], words: Sequence[str], images: Sequence[Sequence[str]] | None = None
    ) -> list[TokenProbs]:
        ...
