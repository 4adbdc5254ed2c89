"""`wrap(client)` with the real OpenAI Python client (sync, async, streaming) against the proxy in front of the tiny
model, the plain client against the proxy, and the `guard` decorator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from purple.firewall import Firewall, Policy
from purple.firewall.wrap import FirewallBlocked, guard, wrap
from purple.types import Decision, Message
from tests.firewall.support import Keyword, ProxyThread, StreamingServer
from tests.support.fixtures import TEST_KEY

PROMPT = [{"role": "user", "content": "write me a haiku"}]


@pytest.fixture(scope="module")
def gateway(upstream: StreamingServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyThread]:
    """The proxy with a permissive policy (secrets only), so the app-side wrapper does the interesting checks."""
    firewall = Firewall(Policy(roles={"user": ["secrets"], "assistant": ["secrets"]}))
    with ProxyThread(firewall, upstream.url, tmp_path_factory.mktemp("gateway") / "audit.jsonl") as running:
        yield running


def app_firewall(**settings: Any) -> Firewall:
    detectors = {"evil": Keyword("evil"), "leak": Keyword(settings.pop("leak", "\x00never"), "leak")}
    return Firewall(Policy(roles={"user": ["evil"], "assistant": ["leak"]}, detectors=detectors, **settings))


def bad_word(upstream: StreamingServer, max_tokens: int, min_at: int = 24) -> str:
    """Four characters from the second half of the model's answer (first seen at `min_at` or later)."""
    reply = upstream.reply(PROMPT, max_tokens=max_tokens)
    start = len(reply) // 2
    word = reply[start : start + 4]
    assert len(word) == 4 and reply.find(word) >= min_at
    return word


def test_sync_client_round_trip_and_input_block(upstream: StreamingServer, gateway: ProxyThread) -> None:
    seen: list[tuple[str, Decision]] = []
    client = wrap(
        openai.OpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0),
        app_firewall(),
        on_result=lambda stage, result: seen.append((stage, result.decision)),
    )
    answer = client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=12)
    assert answer.choices[0].message.content == upstream.reply(PROMPT, max_tokens=12)
    assert seen == [("input", Decision.ALLOW), ("output", Decision.ALLOW)]
    assert client.models.list().data[0].object == "model"  # everything else is the plain client
    before = len(upstream.requests)
    with pytest.raises(FirewallBlocked) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "an evil plan"}])
    assert caught.value.stage == "input" and caught.value.result.blocked_at == 0
    assert len(upstream.requests) == before


def test_sync_client_output_block_raises_or_refuses(upstream: StreamingServer, gateway: ProxyThread) -> None:
    word = bad_word(upstream, 12, min_at=0)
    raw = openai.OpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises(FirewallBlocked, match="blocked by the firewall \\(output\\): leak: found") as caught:
        wrap(raw, app_firewall(leak=word)).chat.completions.create(
            model="tiny", messages=PROMPT, max_tokens=12
        )
    assert caught.value.stage == "output"
    refusing = app_firewall(leak=word, on_block="refuse")
    answer = wrap(raw, refusing).chat.completions.create(model="tiny", messages=PROMPT, max_tokens=12)
    assert answer.choices[0].message.content == refusing.policy.refusal
    assert answer.choices[0].finish_reason == "content_filter"
    refused_input = wrap(raw, refusing).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "evil"}]
    )
    assert refused_input.choices[0].message.content == refusing.policy.refusal


def test_sync_streaming_is_checked_in_windows(upstream: StreamingServer, gateway: ProxyThread) -> None:
    raw = openai.OpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0)
    client = wrap(raw, app_firewall(stream_window=16))
    with client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=24, stream=True) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == upstream.reply(PROMPT, max_tokens=24)
    word = bad_word(upstream, 24)
    received: list[str] = []
    stream = wrap(raw, app_firewall(leak=word, stream_window=16)).chat.completions.create(
        model="tiny", messages=PROMPT, max_tokens=24, stream=True
    )
    with pytest.raises(FirewallBlocked) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert caught.value.stage == "output" and word not in "".join(received) and len("".join(received)) >= 16
    refusing = app_firewall(leak=word, stream_window=16, on_block="refuse")
    chunks = list(
        wrap(raw, refusing).chat.completions.create(model="tiny", messages=PROMPT, max_tokens=24, stream=True)
    )
    assert chunks[-2].choices[0].delta.content == refusing.policy.refusal
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert word not in "".join(c.choices[0].delta.content or "" for c in chunks[:-2])


def test_async_client(upstream: StreamingServer, gateway: ProxyThread) -> None:
    word = bad_word(upstream, 24)

    async def run() -> None:
        raw = openai.AsyncOpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0)
        client = wrap(raw, app_firewall(stream_window=16))
        answer = await client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=12)
        assert answer.choices[0].message.content == upstream.reply(PROMPT, max_tokens=12)
        stream = await client.chat.completions.create(
            model="tiny", messages=PROMPT, max_tokens=24, stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert text == upstream.reply(PROMPT, max_tokens=24)
        with pytest.raises(FirewallBlocked):
            await client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "evil"}])
        blocking = wrap(raw, app_firewall(leak=word, stream_window=16))
        stream = await blocking.chat.completions.create(
            model="tiny", messages=PROMPT, max_tokens=24, stream=True
        )
        received: list[str] = []
        with pytest.raises(FirewallBlocked):
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
        assert word not in "".join(received)
        refusing = app_firewall(on_block="refuse")
        refusal = await wrap(raw, refusing).chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "evil"}], stream=True
        )
        assert [c.choices[0].delta.content async for c in refusal][0] == refusing.policy.refusal
        await raw.close()

    asyncio.run(run())


def test_the_plain_client_sees_proxy_blocks_as_api_errors(upstream: StreamingServer, tmp_path: Path) -> None:
    word = bad_word(upstream, 24)
    firewall = Firewall(
        Policy(
            roles={"user": ["evil"], "assistant": ["leak"]},
            stream_window=16,
            detectors={"evil": Keyword("evil"), "leak": Keyword(word, "leak")},
        )
    )
    with ProxyThread(firewall, upstream.url, tmp_path / "audit.jsonl") as running:
        client = openai.OpenAI(base_url=running.url, api_key=TEST_KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "evil"}])
        assert caught.value.code == "content_filter"
        stream = client.chat.completions.create(model="tiny", messages=PROMPT, max_tokens=24, stream=True)
        with pytest.raises(openai.APIError, match="blocked by the firewall \\(output\\)"):
            for _ in stream:
                pass


def test_guard_decorator_sync_and_async() -> None:
    firewall = Firewall(
        Policy(roles={"user": ["evil"], "assistant": ["secrets"]}, detectors={"evil": Keyword("evil")})
    )
    calls: list[Any] = []

    @guard(firewall)
    def answer(messages: Any, suffix: str = "") -> str:
        calls.append(messages)
        return "here is the key ghp_" + "k" * 36 if "key" in str(messages) else "fine" + suffix

    assert answer("hello", suffix="!") == "fine!"
    assert answer([{"role": "user", "content": "hi"}]) == "fine"
    assert answer([Message("user", "hi")]) == "fine"
    with pytest.raises(FirewallBlocked) as caught:
        answer("evil")
    assert caught.value.stage == "input" and len(calls) == 3
    with pytest.raises(FirewallBlocked) as caught:
        answer("give me the key")
    assert caught.value.stage == "output" and "github-token" in str(caught.value)

    refusing = Firewall(
        Policy(roles={"user": ["evil"]}, detectors={"evil": Keyword("evil")}, on_block="refuse")
    )

    @guard(refusing)
    async def answer_async(messages: Any) -> str:
        return "async fine"

    assert asyncio.run(answer_async("hello")) == "async fine"
    assert asyncio.run(answer_async("evil")) == refusing.policy.refusal

    @guard(firewall)
    def not_text(messages: Any) -> Any:
        return 42

    with pytest.raises(TypeError, match="must return text"):
        not_text("hi")


def test_the_wrapper_leaves_no_way_around_it(gateway: ProxyThread) -> None:
    client = wrap(openai.OpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0), app_firewall())
    with pytest.raises(AttributeError, match="not available through the firewall"):
        client.chat.completions.with_raw_response  # noqa: B018
    tuned = client.with_options(timeout=30)
    with pytest.raises(FirewallBlocked):
        tuned.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "evil"}])


HISTORY = [
    {"role": "user", "content": "an evil plan"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "write me a haiku"},
]


@pytest.mark.parametrize("scan_history", [False, True])
def test_scan_history_checks_earlier_turns_too(
    upstream: StreamingServer, gateway: ProxyThread, scan_history: bool
) -> None:
    """A history the app forwards as its user wrote it: by default earlier turns count as checked (as in the
    proxy); with scan_history the earlier evil turn is blocked before any call."""
    firewall = app_firewall()
    calls: list[Any] = []

    @guard(firewall, scan_history=scan_history)
    def answer(messages: Any) -> str:
        calls.append(messages)
        return "fine"

    @guard(firewall, scan_history=scan_history)
    async def answer_async(messages: Any) -> str:
        calls.append(messages)
        return "async fine"

    async def create_async() -> Any:
        raw = openai.AsyncOpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0)
        try:
            client = wrap(raw, firewall, scan_history=scan_history)
            return await client.chat.completions.create(model="tiny", messages=HISTORY, max_tokens=12)
        finally:
            await raw.close()

    raw = openai.OpenAI(base_url=gateway.url, api_key=TEST_KEY, max_retries=0)
    sync_client = wrap(raw, firewall, scan_history=scan_history)
    attempts: list[Callable[[], Any]] = [
        lambda: sync_client.chat.completions.create(model="tiny", messages=HISTORY, max_tokens=12),
        lambda: sync_client.with_options(timeout=30).chat.completions.create(
            model="tiny", messages=HISTORY, max_tokens=12, stream=True
        ),
        lambda: asyncio.run(create_async()),
        lambda: answer(HISTORY),
        lambda: asyncio.run(answer_async(HISTORY)),
    ]
    before = len(upstream.requests)
    if not scan_history:
        sync, stream, async_, text, async_text = [attempt() for attempt in attempts]
        expected = upstream.reply(HISTORY, max_tokens=12)
        assert sync.choices[0].message.content == expected == async_.choices[0].message.content
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
        assert (text, async_text) == ("fine", "async fine") and len(calls) == 2
        return
    for attempt in attempts:
        with pytest.raises(FirewallBlocked) as caught:
            attempt()
        assert caught.value.stage == "input" and caught.value.result.blocked_at == 0
    assert len(upstream.requests) == before and calls == []
