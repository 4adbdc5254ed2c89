"""The firewall around app code: `wrap(client)` for the OpenAI Python client and `guard` for any function that
takes messages and returns text.

Input (the newest turn: the messages after the last assistant message; every message with `scan_history`) is
checked before the call, output after it; streamed output is checked in windows (`purple.firewall.streaming`).
A block raises FirewallBlocked, or, when the policy says `on_block: refuse`, answers with the policy's refusal
instead. Human review lets the call go on; pass `on_result` to hear about every decision (for streams: each
window's, then the whole answer's).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from purple.firewall.messages import (
    REASONING_KEYS,
    chunk_dict,
    completion_dict,
    from_openai,
    output_text,
    turn_start,
)
from purple.firewall.pipeline import Firewall, FirewallResult, TraceResult
from purple.firewall.policy import Policy
from purple.firewall.streaming import StreamCheck
from purple.types import Message

Stage = Literal["input", "output"]
OnResult = Callable[[Stage, FirewallResult | TraceResult], None]
F = TypeVar("F", bound=Callable[..., Any])


class FirewallBlocked(Exception):
    """The firewall blocked the input (before the model was called) or the output. `result` says why."""

    def __init__(self, stage: Stage, result: FirewallResult | TraceResult) -> None:
        super().__init__(f"blocked by the firewall ({stage}): {result.reason}")
        self.stage = stage
        self.result = result


def _firewall(firewall: Firewall | Policy | str | Path | None) -> Firewall:
    return firewall if isinstance(firewall, Firewall) else Firewall(firewall)


def as_messages(messages: str | Message | Sequence[Message | Mapping[str, Any]]) -> list[Message]:
    """Messages from a string (one user turn), Messages, or OpenAI-style dicts."""
    if isinstance(messages, str):
        return [Message("user", messages)]
    if isinstance(messages, Message):
        return [messages]
    items = list(messages)
    if all(isinstance(m, Message) for m in items):
        return items  # type: ignore[return-value]
    return from_openai([m if isinstance(m, Mapping) else _as_dict(m) for m in items])


def _as_dict(message: Any) -> dict[str, Any]:
    if isinstance(message, Message):
        return {"role": message.role, "content": message.content, "tool_calls": list(message.tool_calls)}
    dump = getattr(message, "model_dump", None)  # openai's typed message params
    if callable(dump):
        return dump(exclude_none=True)
    raise TypeError(f"cannot read a message of type {type(message).__name__}")


# ---------------------------------------------------------------------------------------------- the guard
class _Guard:
    """Checks shared by the sync and async wrappers."""

    def __init__(self, firewall: Firewall, on_result: OnResult | None, scan_history: bool = False) -> None:
        self.firewall = firewall
        self.on_result = on_result
        self.scan_history = scan_history

    def start(self, messages: Sequence[Message]) -> int:
        """Where the input check starts: 0 with `scan_history`, else the newest turn."""
        return 0 if self.scan_history else turn_start(messages)

    @property
    def refuse(self) -> bool:
        return self.firewall.policy.on_block == "refuse"

    def _report(self, stage: Stage, result: FirewallResult | TraceResult) -> None:
        if self.on_result is not None:
            self.on_result(stage, result)

    def inbound(self, result: TraceResult) -> bool:
        """True when the call may go on; raises FirewallBlocked in raise mode."""
        self._report("input", result)
        if result.blocked and not self.refuse:
            raise FirewallBlocked("input", result)
        return not result.blocked

    def outbound(self, result: FirewallResult) -> bool:
        """True when the output may go out; raises FirewallBlocked in raise mode."""
        self._report("output", result)
        if result.blocked and not self.refuse:
            raise FirewallBlocked("output", result)
        return not result.blocked

    def refusal_completion(self, model: str) -> Any:
        from openai.types.chat import ChatCompletion

        return ChatCompletion.model_validate(
            completion_dict(model, self.firewall.policy.refusal, "content_filter")
        )

    def refusal_chunks(self, model: str) -> list[Any]:
        from openai.types.chat import ChatCompletionChunk

        return [
            ChatCompletionChunk.model_validate(chunk_dict(model, self.firewall.policy.refusal, None)),
            ChatCompletionChunk.model_validate(chunk_dict(model, None, "content_filter")),
        ]

    def refuse_choices(self, response: Any, blocked: list[int]) -> Any:
        """`response` with the blocked choices' messages replaced by the refusal."""
        choices = list(response.choices)
        for index in blocked:
            message = choices[index].message
            reasoning = {key: None for key in REASONING_KEYS if getattr(message, key, None) is not None}
            message = message.model_copy(
                update={"content": self.firewall.policy.refusal, "tool_calls": None, "function_call": None,
                        **reasoning}
            )
            choices[index] = choices[index].model_copy(
                update={"message": message, "finish_reason": "content_filter"}
            )
        return response.model_copy(update={"choices": choices})


def _output_message(choice: Any) -> Message:
    message = choice.message
    calls = tuple(c.model_dump(exclude_none=True) for c in (message.tool_calls or ()))
    legacy = getattr(message, "function_call", None)
    if legacy is not None:
        calls = (*calls, {"type": "function", "function": legacy.model_dump(exclude_none=True)})
    return Message("assistant", output_text(message.model_dump()), tool_calls=calls)


def _request_messages(kwargs: Mapping[str, Any]) -> list[Message]:
    messages = kwargs.get("messages")
    if messages is None:
        raise TypeError("create() needs `messages`")
    return as_messages(messages)


# ----------------------------------------------------------------------------------------------- sync client
_UNGUARDED = ("with_raw_response", "with_streaming_response")


class _Completions:
    def __init__(self, completions: Any, guard: _Guard) -> None:
        self._completions = completions
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        if name in _UNGUARDED:  # these would reach the model around the firewall
            raise AttributeError(
                f"chat.completions.{name} is not available through the firewall; use create()"
            )
        return getattr(self._completions, name)

    def create(self, **kwargs: Any) -> Any:
        guard = self._guard
        messages = _request_messages(kwargs)
        model = str(kwargs.get("model", ""))
        if not guard.inbound(guard.firewall.replay(messages, guard.start(messages))):
            if kwargs.get("stream"):
                return _ListStream(guard.refusal_chunks(model))
            return guard.refusal_completion(model)
        response = self._completions.create(**kwargs)
        if kwargs.get("stream"):
            return _Stream(response, StreamCheck(guard.firewall, messages), guard, model)
        blocked = [
            i
            for i, choice in enumerate(response.choices)
            if not guard.outbound(guard.firewall.scan(_output_message(choice), messages))
        ]
        return guard.refuse_choices(response, blocked) if blocked else response


class _Stream:
    """Iterates a wrapped stream: chunks come out once the output up to them has passed a check."""

    def __init__(self, stream: Any, check: StreamCheck, guard: _Guard, model: str) -> None:
        self._stream = stream
        self._check = check
        self._guard = guard
        self._model = model
        self._chunks = self._run()

    def __iter__(self) -> Iterator[Any]:
        return self._chunks

    def __next__(self) -> Any:
        return next(self._chunks)

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._chunks.close()
        self._stream.close()

    def _run(self) -> Iterator[Any]:
        held: list[Any] = []
        try:
            for chunk in self._stream:
                data = chunk.model_dump()
                if self._check.due_before(data):
                    if not self._guard.outbound(self._check.check()):
                        yield from self._guard.refusal_chunks(self._model)
                        return
                    yield from held
                    held.clear()
                self._check.feed(data)
                held.append(chunk)
            if not self._guard.outbound(self._check.check()):
                yield from self._guard.refusal_chunks(self._model)
                return
            yield from held
        finally:
            self._stream.close()


class _ListStream:
    """A stream of ready chunks (the refusal when the input is blocked), with a stream's iteration and close."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __iter__(self) -> _ListStream:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    def __enter__(self) -> _ListStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._items = iter(())


class _Chat:
    def __init__(self, chat: Any, completions: Any) -> None:
        self._chat = chat
        self.completions = completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat, name)


class GuardedClient:
    """An OpenAI client whose `chat.completions.create` goes through the firewall; everything else is the client's
    (other APIs, such as `responses` or `embeddings`, are not checked).
    """

    def __init__(self, client: Any, guard: _Guard, completions: Any) -> None:
        self._client = client
        self._guard = guard
        self.firewall = guard.firewall
        self.chat = _Chat(client.chat, completions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def with_options(self, **options: Any) -> GuardedClient:
        """The client's `with_options`, still behind the firewall."""
        return _guarded(self._client.with_options(**options), self._guard)

    copy = with_options


# ---------------------------------------------------------------------------------------------- async client
class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:  # type: ignore[override]
        guard = self._guard
        messages = _request_messages(kwargs)
        model = str(kwargs.get("model", ""))
        if not guard.inbound(await guard.firewall.areplay(messages, guard.start(messages))):
            if kwargs.get("stream"):
                return _AsyncList(guard.refusal_chunks(model))
            return guard.refusal_completion(model)
        response = await self._completions.create(**kwargs)
        if kwargs.get("stream"):
            return _AsyncStream(response, StreamCheck(guard.firewall, messages), guard, model)
        blocked = [
            i
            for i, choice in enumerate(response.choices)
            if not guard.outbound(await guard.firewall.ascan(_output_message(choice), messages))
        ]
        return guard.refuse_choices(response, blocked) if blocked else response


class _AsyncList:
    """The async twin of _ListStream."""

    def __init__(self, items: list[Any]) -> None:
        self._items = iter(items)

    def __aiter__(self) -> _AsyncList:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _AsyncList:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._items = iter(())


class _AsyncStream:
    def __init__(self, stream: Any, check: StreamCheck, guard: _Guard, model: str) -> None:
        self._stream = stream
        self._check = check
        self._guard = guard
        self._model = model
        self._chunks = self._run()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._chunks

    async def __anext__(self) -> Any:
        return await self._chunks.__anext__()

    async def __aenter__(self) -> _AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._chunks.aclose()
        await self._stream.close()

    async def _run(self) -> AsyncIterator[Any]:
        held: list[Any] = []
        try:
            async for chunk in self._stream:
                data = chunk.model_dump()
                if self._check.due_before(data):
                    if not self._guard.outbound(await self._check.acheck()):
                        for refusal in self._guard.refusal_chunks(self._model):
                            yield refusal
                        return
                    for item in held:
                        yield item
                    held.clear()
                self._check.feed(data)
                held.append(chunk)
            if not self._guard.outbound(await self._check.acheck()):
                for refusal in self._guard.refusal_chunks(self._model):
                    yield refusal
                return
            for item in held:
                yield item
        finally:
            await self._stream.close()


# ------------------------------------------------------------------------------------------------- public
def wrap(
    client: Any,
    firewall: Firewall | Policy | str | Path | None = None,
    *,
    on_result: OnResult | None = None,
    scan_history: bool = False,
) -> Any:
    """`client` (openai.OpenAI or openai.AsyncOpenAI) with the firewall around `chat.completions.create`.

    `firewall` is a Firewall (share one: its detectors are built once), a Policy, a preset name or a YAML path.
    `scan_history`: check every message of each request, not only the newest turn (the default trusts the
    earlier turns as checked when they were new, which holds only when the app keeps the history itself).
    """
    return _guarded(client, _Guard(_firewall(firewall), on_result, scan_history))


def _guarded(client: Any, guard: _Guard) -> GuardedClient:
    completions = client.chat.completions
    is_async = inspect.iscoroutinefunction(completions.create) or type(client).__name__.startswith("Async")
    wrapped = (_AsyncCompletions if is_async else _Completions)(completions, guard)
    return GuardedClient(client, guard, wrapped)


def guard(
    firewall: Firewall | Policy | str | Path | None = None,
    *,
    on_result: OnResult | None = None,
    scan_history: bool = False,
) -> Callable[[F], F]:
    """Decorator for `fn(messages, ...) -> str` (sync or async): checks the messages' newest turn before the call
    and the returned text after it. `messages` may be a string, Messages, or OpenAI-style dicts.
    `scan_history`: check every message, not only the newest turn (as for `wrap`).
    """
    checks = _Guard(_firewall(firewall), on_result, scan_history)

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(messages: Any, *args: Any, **kwargs: Any) -> str:
                conversation = as_messages(messages)
                inbound = await checks.firewall.areplay(conversation, checks.start(conversation))
                if not checks.inbound(inbound):
                    return checks.firewall.policy.refusal
                text = await fn(messages, *args, **kwargs)
                if not checks.outbound(
                    await checks.firewall.ascan(Message("assistant", _text(text)), conversation)
                ):
                    return checks.firewall.policy.refusal
                return text

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(messages: Any, *args: Any, **kwargs: Any) -> str:
            conversation = as_messages(messages)
            if not checks.inbound(checks.firewall.replay(conversation, checks.start(conversation))):
                return checks.firewall.policy.refusal
            text = fn(messages, *args, **kwargs)
            if not checks.outbound(checks.firewall.scan(Message("assistant", _text(text)), conversation)):
                return checks.firewall.policy.refusal
            return text

        return run  # type: ignore[return-value]

    return decorate


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a guarded function must return text, got {type(value).__name__}")
    return value
