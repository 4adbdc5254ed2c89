"""Test-only pieces for the firewall: small real detectors, a streaming upstream over the tiny model, and the
proxy running in a thread on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from purple.firewall import Firewall
from purple.firewall.audit import AuditLog
from purple.types import BatchDetector, Conversation, Decision, Verdict
from tests.support.openai_server import OpenAIServer


class Keyword(BatchDetector):
    """Scores 1.0 (block) when the last message contains `word`, else 0.0. Counts its batches."""

    def __init__(
        self, word: str, name: str = "keyword", score: float = 1.0, decision: Decision = Decision.BLOCK
    ) -> None:
        self.word = word
        self.name = name
        self.score = score
        self.decision = decision
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        with self._lock:
            self.batches.append(len(conversations))
        out = []
        for conversation in conversations:
            hit = self.word in conversation[-1].content
            out.append(
                Verdict(
                    self.decision if hit else Decision.ALLOW,
                    self.score if hit else 0.0,
                    self.name,
                    labels=(self.word,) if hit else (),
                    reason=f"found {self.word!r}" if hit else "clean",
                )
            )
        return out


class Sleepy(BatchDetector):
    """Allows after sleeping `seconds` (in a thread for sync calls, on the loop for async ones)."""

    def __init__(self, seconds: float, name: str = "sleepy") -> None:
        self.seconds = seconds
        self.name = name

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        time.sleep(self.seconds)
        return [Verdict(Decision.ALLOW, 0.1, self.name, reason="slept") for _ in conversations]

    async def acheck_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        await asyncio.sleep(self.seconds)
        return [Verdict(Decision.ALLOW, 0.1, self.name, reason="slept") for _ in conversations]


class Crashing(BatchDetector):
    """Raises on every call (or only on texts containing `trigger`)."""

    def __init__(self, name: str = "crashing", trigger: str | None = None) -> None:
        self.name = name
        self.trigger = trigger

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        if self.trigger is None or any(self.trigger in c[-1].content for c in conversations):
            raise RuntimeError("detector exploded")
        return [Verdict(Decision.ALLOW, 0.0, self.name, reason="fine") for _ in conversations]


class Wordy(BatchDetector):
    """Allows, with a reason `chars` long when the last message contains `word` (a record too big to keep)."""

    def __init__(self, word: str, chars: int, name: str = "wordy") -> None:
        self.word = word
        self.chars = chars
        self.name = name

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        reasons = ["x" * self.chars if self.word in c[-1].content else "quiet" for c in conversations]
        return [Verdict(Decision.ALLOW, 0.0, self.name, reason=reason) for reason in reasons]


class Rendezvous(BatchDetector):
    """Allows only when `parties` detectors are inside `check` at the same time: proves they run in parallel."""

    def __init__(self, barrier: threading.Barrier, name: str) -> None:
        self.barrier = barrier
        self.name = name

    def check_many(self, conversations: Sequence[Conversation]) -> list[Verdict]:
        self.barrier.wait(timeout=5)
        return [Verdict(Decision.ALLOW, 0.0, self.name, reason="met") for _ in conversations]


class StreamingServer(OpenAIServer):
    """The tiny-model server, also answering `stream: true` with server-sent events (the model's text in pieces).

    `piece_chars` sets the size of each streamed piece.
    """

    piece_chars = 6

    def _handler(self) -> Any:
        base = super()._handler()
        server = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                if not (
                    isinstance(body, dict) and body.get("stream") and self.path == "/v1/chat/completions"
                ):
                    self.rfile = io.BytesIO(raw)
                    return super().do_POST()
                auth = self.headers.get("Authorization", "")
                server.requests.append({"path": self.path, "body": body, "authorized": bool(auth)})
                if server.api_key is not None and auth != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                answer = server._chat({**body, "stream": False})
                text = answer["choices"][0]["message"]["content"]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = [text[i : i + server.piece_chars] for i in range(0, len(text), server.piece_chars)]
                for index, piece in enumerate(pieces):
                    delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
                    self._event(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion.chunk",
                            "created": 0,
                            "model": body.get("model"),
                            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                        }
                    )
                self._event(
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    }
                )
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, payload: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        return Handler

    def reply(self, messages: list[dict[str, Any]], max_tokens: int = 16) -> str:
        """What the model answers to `messages` (greedy decoding: the same every time)."""
        return self._chat({"messages": messages, "max_tokens": max_tokens})["choices"][0]["message"][
            "content"
        ]


class ProxyThread:
    """The real proxy (uvicorn + the Starlette app) serving on 127.0.0.1 from a background thread."""

    def __init__(self, firewall: Firewall, upstream: str, audit_path: Path, **options: Any) -> None:
        import uvicorn

        from purple.firewall.proxy import bind, create_app

        self.audit = AuditLog(audit_path)
        self.app = create_app(firewall, upstream, self.audit, **options)
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ProxyThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.audit.close()
