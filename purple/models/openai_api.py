"""Any OpenAI-compatible server (OpenAI, vLLM, Together, Groq, llama.cpp, LM Studio, Ollama) over async HTTP.

Chat (`/chat/completions`) and raw text (`/completions`) requests run concurrently under one limit per model and
event loop (shared by overlapping batches, over one pooled client), with timeouts and retries with backoff on
429, 5xx and connection failures. Each item that still fails becomes a Completion with
`error` set; the rest of the batch is kept. The API key is sent as a bearer token and redacted from every message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from purple.models.base import GenerationParams, ModelError
from purple.models.images import image_url
from purple.models.secrets import Secret, public_url, redact
from purple.models.sync import run_sync
from purple.types import Completion, Conversation

log = logging.getLogger("purple.models")

MAX_RESPONSE_BYTES = 10_000_000
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_ROLE = {"system": "system", "user": "user", "assistant": "assistant", "tool": "user", "memory": "user"}


MAX_CONCURRENCY = 512
"""Requests in flight at most: every 8 take a connection pool, and no API serves one client more usefully."""
POOL_SIZE = 8
"""Connections per httpx pool. httpcore's pool walks every connection for every queued request, so one pool of 32
or more connections spends more CPU on bookkeeping than on the requests; a few small pools side by side do not."""


@dataclass
class _Session:
    """Small connection pools and one concurrency limit, bound to the event loop that made them."""

    clients: list[httpx.AsyncClient]
    limit: asyncio.Semaphore
    busy: list[int]

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()


class OpenAIModel:
    """A model behind an OpenAI-compatible HTTP API."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: Secret | None = None,
        *,
        provider: str = "openai",
        concurrency: int = 8,
        timeout_s: float = 60.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ModelError(
                f"bad base URL {public_url(base_url)!r}: expected http://HOST[:PORT]/v1 or https://..."
            )
        self.model = model
        self.name = f"{provider}:{model}"
        self.base_url = base_url.rstrip("/")
        self.shown_url = public_url(self.base_url)
        """The base URL as errors and reprs show it (credentials in it masked)."""
        self._key = api_key or Secret("")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ModelError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Session] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"OpenAIModel(model={self.model!r}, base_url={self.shown_url!r})"

    # ------------------------------------------------------------------------------------------- public API
    def generate(self, conversations: Sequence[Conversation], params: GenerationParams | None = None) -> list[Completion]:
        return run_sync(self._then_close(self.agenerate(conversations, params)))

    async def agenerate(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[Completion]:
        params = params or GenerationParams()
        return await self._batch([self._chat_body(c, params) for c in conversations], "/chat/completions", _parse_chat)

    def complete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        return run_sync(self._then_close(self.acomplete(prompts, params, images)))

    async def acomplete(
        self, prompts: Sequence[str], params: GenerationParams | None = None, images: Sequence[Sequence[str]] | None = None
    ) -> list[Completion]:
        params = params or GenerationParams()
        if images and any(images):
            return [Completion("", error="the raw completions endpoint takes no images; use the chat endpoint")] * len(
                prompts
            )
        bodies = [self._completion_body(p, params) for p in prompts]
        return await self._batch(bodies, "/completions", _parse_completion)

    def close(self) -> None:
        """Release connection pools; a pool of a loop still running is closed on that loop."""
        for loop, session in list(self._sessions.items()):
            if not loop.is_closed() and loop.is_running():
                loop.create_task(session.aclose())
        self._sessions.clear()

    async def aclose(self) -> None:
        """Close this event loop's connection pool."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.aclose()

    async def _then_close(self, work: Coroutine[Any, Any, list[Completion]]) -> list[Completion]:
        """For the synchronous API, whose event loop ends with the call."""
        try:
            return await work
        finally:
            await self.aclose()

    def _session(self) -> _Session:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None:
            headers = {"Content-Type": "application/json"}
            if self._key:
                headers["Authorization"] = f"Bearer {self._key.reveal()}"
            timeout = httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0))
            pools = -(-self.concurrency // POOL_SIZE)
            size = -(-self.concurrency // pools)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            clients = [httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits, trust_env=False)
                       for _ in range(pools)]
            session = self._sessions[loop] = _Session(clients, asyncio.Semaphore(self.concurrency), [0] * pools)
        return session

    # -------------------------------------------------------------------------------------------- requests
    def _common(self, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(params.extra)
        return body

    def _chat_body(self, conversation: Conversation, params: GenerationParams) -> dict[str, Any] | str:
        try:
            messages = [_chat_message(m) for m in conversation]
        except ValueError as exc:
            return str(exc)
        body = {**self._common(params), "messages": messages}
        if params.top_logprobs > 0:
            body["logprobs"] = True
            body["top_logprobs"] = params.top_logprobs
        return body

    def _completion_body(self, prompt: str, params: GenerationParams) -> dict[str, Any]:
        body = {**self._common(params), "prompt": prompt}
        if params.top_logprobs > 0:
            body["logprobs"] = params.top_logprobs
        return body

    async def _batch(
        self,
        bodies: Sequence[dict[str, Any] | str],
        path: str,
        parse: Callable[[dict[str, Any]], Completion],
    ) -> list[Completion]:
        if not bodies:
            return []
        session = self._session()

        async def one(body: dict[str, Any] | str) -> Completion:
            if isinstance(body, str):  # the item could not even be built (e.g. a missing image)
                return Completion("", error=body)
            async with session.limit:
                pool = min(range(len(session.clients)), key=session.busy.__getitem__)  # the least busy pool
                session.busy[pool] += 1
                try:
                    return await self._post(session.clients[pool], path, body, parse)
                finally:
                    session.busy[pool] -= 1

        return list(await asyncio.gather(*(one(b) for b in bodies)))

    async def _post(
        self,
        client: httpx.AsyncClient,
        path: str,
        body: dict[str, Any],
        parse: Callable[[dict[str, Any]], Completion],
    ) -> Completion:
        url = self.base_url + path
        shown = self.shown_url + path
        started = time.perf_counter()
        last_error = "no attempt made"
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                response = await client.post(url, json=body)
                if response.status_code == 200:
                    data = _json_body(response)
                    completion = parse(data)
                    return _with_latency(completion, time.perf_counter() - started)
                last_error = f"HTTP {response.status_code} from {shown}: {_error_text(response)}"
                if response.status_code not in _RETRY_STATUS:
                    break
                retry_after = _retry_after(response)
            except httpx.ConnectError as exc:
                last_error = f"cannot reach {self.shown_url} ({_reason(exc)})"
                if attempt >= 1:  # a refused connection rarely heals within a backoff; one retry is enough
                    break
            except httpx.TimeoutException:
                last_error = f"no answer from {shown} within {self.timeout_s:g} s"
            except httpx.HTTPError as exc:
                last_error = f"request to {shown} failed ({_reason(exc)})"
            except ValueError as exc:  # unreadable JSON or an unexpected shape: the server will not do better next time
                last_error = f"unexpected answer from {shown}: {exc}"
                break
            if attempt < self.retries:
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
                if retry_after is not None:
                    delay = min(self.max_backoff_s, max(delay, retry_after))
                log.debug("retrying %s in %.2f s: %s", path, delay, self._shown(last_error))
                await asyncio.sleep(delay)
        return Completion("", latency_s=time.perf_counter() - started, error=self._shown(last_error))

    def _shown(self, error: str) -> str:
        """An error fit for records and logs: the key and the base URL's credentials masked."""
        return redact(error.replace(self.base_url, self.shown_url), self._key)


# ------------------------------------------------------------------------------------------------ helpers
def _chat_message(message: Any) -> dict[str, Any]:
    role = _ROLE[message.role]
    if not message.images:
        out: dict[str, Any] = {"role": role, "content": message.content}
    else:
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": image_url(i)}} for i in message.images]
        parts.append({"type": "text", "text": message.content})
        out = {"role": role, "content": parts}
    if message.tool_calls and role == "assistant":
        out["tool_calls"] = list(message.tool_calls)
    return out


def _json_body(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise ValueError(f"answer larger than {MAX_RESPONSE_BYTES:,} bytes")
    try:
        data = response.json()
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("no choices in the answer")
    return choices[0]


def _usage(data: dict[str, Any]) -> dict[str, int]:
    usage = data.get("usage") or {}
    return {k: int(v) for k, v in usage.items() if isinstance(v, int)} if isinstance(usage, dict) else {}


def _parse_chat(data: dict[str, Any]) -> Completion:
    choice = _first_choice(data)
    message = choice.get("message") or {}
    text = message.get("content") or ""
    if not isinstance(text, str):
        raise ValueError("message content is not text")
    logprobs = tokens = None
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) else None
    if isinstance(content, list):
        tokens = tuple(str(item.get("token", "")) for item in content)
        logprobs = tuple(_top_from_list(item) for item in content)
    return Completion(text, logprobs=logprobs, tokens=tokens, usage=_usage(data))


def _top_from_list(item: dict[str, Any]) -> dict[str, float]:
    top = {str(t.get("token", "")): float(t.get("logprob", -1e9)) for t in item.get("top_logprobs") or []}
    chosen = str(item.get("token", ""))
    if chosen not in top and "logprob" in item:
        top[chosen] = float(item["logprob"])
    return top


def _parse_completion(data: dict[str, Any]) -> Completion:
    choice = _first_choice(data)
    text = choice.get("text") or ""
    if not isinstance(text, str):
        raise ValueError("completion text is not text")
    logprobs = tokens = None
    raw = choice.get("logprobs")
    if isinstance(raw, dict) and isinstance(raw.get("top_logprobs"), list):
        logprobs = tuple(
            {str(k): float(v) for k, v in (entry or {}).items()} for entry in raw["top_logprobs"]
        )
        if isinstance(raw.get("tokens"), list):
            tokens = tuple(str(t) for t in raw["tokens"])
    return Completion(text, logprobs=logprobs, tokens=tokens, usage=_usage(data))


def _with_latency(completion: Completion, latency: float) -> Completion:
    return Completion(
        completion.text, completion.logprobs, completion.usage, latency, completion.error, completion.tokens
    )


def _error_text(response: httpx.Response) -> str:
    text = response.text[:300].strip().replace("\n", " ")
    try:
        data = response.json()
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict) and err.get("message"):
                text = str(err["message"])[:300]
            elif isinstance(err, str):
                text = err[:300]
    except ValueError:
        pass
    return text or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]

