"""The OpenAI-compatible backend against a real local server: logprobs, retries, per-item errors, secret keys."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from purple.models import GenerationParams, load_model
from purple.models.openai_api import OpenAIModel
from purple.models.secrets import Secret
from purple.types import user
from tests.support.fixtures import TEST_KEY
from tests.support.openai_server import OpenAIServer


def client(server: OpenAIServer, **kw: Any) -> OpenAIModel:
    return OpenAIModel("tiny", server.url, Secret(TEST_KEY), retries=kw.pop("retries", 3), backoff_s=0.01, **kw)


def test_chat_and_completions_with_logprobs(lg3_server: OpenAIServer) -> None:
    model = client(lg3_server)
    chat = model.generate([[user("hello")], [user("bye")]], GenerationParams(max_tokens=3, top_logprobs=5))
    for completion in chat:
        assert completion.error is None and completion.logprobs and completion.tokens
        assert len(completion.logprobs[0]) <= 5
    raw = model.complete(["Once upon a time"], GenerationParams(max_tokens=2, top_logprobs=4))[0]
    assert raw.error is None and raw.logprobs is not None and raw.usage["prompt_tokens"] > 0
    assert lg3_server.requests[-1]["path"] == "/v1/completions" and lg3_server.requests[-1]["authorized"]


def test_retries_on_429_and_5xx(lg3_server: OpenAIServer) -> None:
    lg3_server.fail_next[:] = [429, 503]
    done = client(lg3_server).complete(["hi"], GenerationParams(max_tokens=1))[0]
    assert done.error is None


def test_a_failed_item_does_not_lose_the_batch(lg3_server: OpenAIServer) -> None:
    lg3_server.fail_next[:] = [400]
    done = client(lg3_server, concurrency=1).complete(["a", "b", "c"], GenerationParams(max_tokens=1))
    assert [d.error is None for d in done] == [False, True, True]
    assert "HTTP 400" in (done[0].error or "")


def test_wrong_key_and_unreachable_server_never_show_the_key(
    lg3_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="purple.models")
    wrong = OpenAIModel("tiny", lg3_server.url, Secret("sk-wrong-key-424242"), retries=0)
    err = wrong.complete(["x"], GenerationParams(max_tokens=1))[0].error or ""
    assert "HTTP 401" in err and "sk-wrong" not in err
    gone = load_model("OPENAI::tiny::sk-wrong-key-424242::http://127.0.0.1:9/v1", retries=1, backoff_s=0.01)
    err = gone.generate([[user("x")]])[0].error or ""
    assert err.startswith("cannot reach http://127.0.0.1:9/v1") and "sk-wrong" not in err
    assert "sk-wrong" not in repr(gone) and "sk-wrong" not in caplog.text
    userinfo = OpenAIModel("tiny", "http://bob:pw-secret@127.0.0.1:9/v1?key=k-secret", retries=1,
                           backoff_s=0.01)
    err = userinfo.generate([[user("x")]])[0].error or ""
    assert err.startswith("cannot reach http://***@127.0.0.1:9/v1?key=***")
    assert "secret" not in err + repr(userinfo) + caplog.text


def test_timeouts_are_item_errors(lg3_server: OpenAIServer) -> None:
    lg3_server.delay_s = 0.5
    try:
        done = client(lg3_server, retries=0, timeout_s=0.1).complete(["x"], GenerationParams(max_tokens=1))[0]
    finally:
        lg3_server.delay_s = 0.0
    assert "within 0.1 s" in (done.error or "")


def test_async_generation_and_sync_calls_inside_a_running_loop(lg3_server: OpenAIServer) -> None:
    model = client(lg3_server)

    async def run() -> list[Any]:
        done = await model.agenerate([[user("hi")]], GenerationParams(max_tokens=2))
        return done + model.generate([[user("hi")]], GenerationParams(max_tokens=1))  # sync call inside a loop

    assert all(c.error is None for c in asyncio.run(run()))
