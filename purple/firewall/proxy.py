"""The firewall as an OpenAI-compatible proxy (`purple serve`): Starlette on uvicorn, httpx to the upstream.

- `POST /v1/chat/completions` (streaming included): the newest turn is scanned before the request goes upstream
  (every message with `scan_history`, for apps that forward histories their users wrote), the answer after it comes
  back (streamed answers in windows: chunks are held until the output so far passes). An upstream that ignores
  `stream` and answers with one JSON completion (whatever its Content-Type says) has it scanned whole, then
  sent to the client as a stream; a streamed answer that is neither events nor a completion ends in
  `bad_upstream`.
- `GET /v1/models`: the upstream's list. `GET /health`: the proxy's own state and policy; 503 while the audit log
  cannot be written (each probe then tries the log again, so the proxy recovers without traffic).
- The client's `Authorization` (and OpenAI organization / project, Azure `api-key`) headers go to the upstream as
  they came; they are never logged or written anywhere.
- Every decision is appended to the JSONL audit log and on disk before the response that depends on it is sent:
  decisions, scores, reasons, finding locations, content hashes and lengths; no headers, and no message text
  beyond what a detector quotes in its reason (hidden_unicode spells out decoded tag characters). A request whose
  record cannot be written is refused (503 `audit_unavailable`): nothing goes up or back unrecorded. A record
  over the log's cap refuses the request (413 `request_too_large`) or withholds the answer (502
  `answer_too_large`; mid-stream, an error event ends the stream).
- A block answers HTTP 400 with error code `content_filter` (policy `on_block: raise`), or a normal completion
  holding the policy's refusal with `finish_reason: content_filter` (`on_block: refuse`). Mid-stream, a block
  ends the stream with an error event (raise) or a refusal chunk (refuse).
- The upstream's own errors pass through with their status; an unreachable upstream is 502, a slow one 504.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from purple.firewall.audit import MAX_RECORD_BYTES, AuditLog
from purple.firewall.messages import chunk_dict, completion_chunks, from_openai, output_text, turn_start
from purple.firewall.pipeline import Firewall, FirewallResult, TraceResult
from purple.firewall.streaming import StreamCheck
from purple.types import Message

log = logging.getLogger("purple.proxy")

FORWARDED_HEADERS = ("authorization", "openai-organization", "openai-project", "api-key")
MAX_BODY_BYTES = 4_000_000
MAX_RESPONSE_BYTES = 20_000_000
MAX_EVENT_BYTES = 1_000_000
KEEP_ALIVE_S = 75
"""Idle client connections stay open this long: longer than clients' own pool expiry (httpx and the OpenAI client
keep idle connections 5 s), so a client never reuses a connection the proxy has just closed (a reset request)."""


class ProxyError(Exception):
    """The proxy cannot start (a bad upstream URL, an address in use): one readable line."""


class _UpstreamError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def check_upstream(url: str) -> str:
    """The upstream base URL without a trailing slash; ProxyError when it is not http(s)://HOST[:PORT][/PATH].

    Credentials and query strings are refused: keys travel in the clients' headers, and the URL is shown in
    messages and logs.
    """
    try:
        parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or not parsed.host:
        raise ProxyError(f"bad upstream URL {url!r}: expected http://HOST:PORT/v1 or https://...")
    if parsed.userinfo or parsed.query or parsed.fragment:
        raise ProxyError("the upstream URL must not carry credentials or a query; clients send their key in a header")
    return url.rstrip("/")


def create_app(
    firewall: Firewall,
    upstream: str,
    audit: AuditLog,
    *,
    timeout_s: float = 120.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    scan_history: bool = False,
) -> Starlette:
    """The proxy as an ASGI app. The caller owns `firewall` and `audit` (and closes them).

    `scan_history`: scan every message of each request, not only the newest turn (the default trusts the earlier
    turns as scanned when they were new, which holds only when the app keeps the history itself).
    """
    proxy = _Proxy(firewall, check_upstream(upstream), audit, timeout_s, max_body_bytes, scan_history)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.client.aclose()

    return Starlette(
        routes=[
            Route("/health", proxy.health, methods=["GET"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/v1/chat/completions", proxy.chat, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={Exception: _internal_error},
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s: %s: %s", request.url.path, type(exc).__name__, _reason(exc))
    return _error(500, "internal error in the firewall proxy", "internal_error", _request_id())


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; ProxyError (one line) when the address cannot be used."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        raise ProxyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def serve(
    firewall: Firewall,
    upstream: str,
    audit: AuditLog,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    timeout_s: float = 120.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    scan_history: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then finish the requests in flight and return (a second signal: at once).

    `on_ready` gets the base URL once the socket listens. The server runs on a worker thread while the main thread
    owns the signals, so a stop is an ordinary return and the caller's clean-up runs. `scan_history`: see create_app.
    """
    import uvicorn

    app = create_app(
        firewall, upstream, audit, timeout_s=timeout_s, max_body_bytes=max_body_bytes, scan_history=scan_history
    )
    sock = bind(host, port)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread as one line
            failures.append(exc)

    def stop(signum: int, frame: Any) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    thread = threading.Thread(target=run, name="purple-proxy")
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        thread.start()
        if on_ready is not None:
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{sock.getsockname()[1]}/v1")
        while thread.is_alive():
            thread.join(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if failures:
        raise ProxyError(f"the proxy stopped: {type(failures[0]).__name__}: {_reason(failures[0])}")


# ------------------------------------------------------------------------------------------------ handlers
class _Proxy:
    def __init__(
        self,
        firewall: Firewall,
        upstream: str,
        audit: AuditLog,
        timeout_s: float,
        max_body_bytes: int,
        scan_history: bool,
    ) -> None:
        self.firewall = firewall
        self.upstream = upstream
        self.audit = audit
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.scan_history = scan_history
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            trust_env=False,  # no proxy settings or .netrc credentials from the environment
        )

    async def health(self, request: Request) -> Response:
        """200 with the policy, or 503 while the last audit write failed."""
        if self.audit.failure is not None:  # try again, so the proxy recovers even with no traffic
            try:
                await self.audit.aretry()
            except (OSError, RuntimeError):
                pass
        failure = self.audit.failure
        policy = self.firewall.policy
        audit: dict[str, Any] = {"ok": True}
        if failure is not None:
            audit = {
                "ok": False,
                "error": f"the audit log cannot be written: {failure.error}",
                "since": failure.since,
                "lost_records": failure.lost_records,
            }
        return JSONResponse(
            {
                "status": "ok" if failure is None else "audit_failing",
                "audit": audit,
                "policy": policy.name,
                "scan_history": self.scan_history,
                "detectors": {role: self.firewall.detectors_for(role) for role in policy.roles},
                "notes": self.firewall.notes,
            },
            status_code=200 if failure is None else 503,
        )

    async def models(self, request: Request) -> Response:
        request_id = _request_id()
        try:
            response = await self.client.get(f"{self.upstream}/models", headers=_forwarded(request.headers))
            body = await _read_capped(response)
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        except httpx.HTTPError as exc:
            failure = _upstream_failure(exc, self.upstream, self.timeout_s)
            return _error(failure.status, str(failure), failure.code, request_id)
        return Response(
            body,
            status_code=response.status_code,
            media_type="application/json",
            headers={"X-Purple-Request-Id": request_id},
        )

    async def chat(self, request: Request) -> Response:
        request_id = _request_id()
        started = time.perf_counter()
        try:
            body = await self._json_body(request)
            messages = from_openai(body.get("messages"))
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        except ValueError as exc:
            return _error(400, f"invalid request: {exc}", "invalid_request", request_id)
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        stream = body.get("stream") is True
        start = 0 if self.scan_history else turn_start(messages)
        inbound = await self.firewall.areplay(messages, start)
        base = {"request_id": request_id, "model": model, "stream": stream}
        try:
            await self.audit.awrite({**base, "stage": "input", **_trace_record(inbound, messages, start)})
        except ValueError:  # over the log's record cap: refused, as nothing goes upstream unrecorded
            return _error(
                413,
                f"the request's audit record would be larger than {MAX_RECORD_BYTES:,} bytes "
                f"({len(inbound.results)} messages scanned); send fewer messages",
                "request_too_large",
                request_id,
            )
        except (OSError, RuntimeError) as exc:
            log.error("audit log write failed: %s", exc)
            return _error(
                503, "the audit log cannot be written; request not forwarded", "audit_unavailable", request_id
            )
        if inbound.blocked:
            return self._blocked("input", inbound.reason, model, stream, request_id)
        headers = _forwarded(request.headers)
        if stream:
            return await self._stream(body, headers, messages, base, request_id, started)
        try:
            response = await self._post_chat(body, headers, base, started)
            raw = await self._read_answer(response, base, started)
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        if response.status_code != 200:
            await self._note_upstream(base, response.status_code, started)
            return Response(
                raw,
                status_code=response.status_code,
                media_type=response.headers.get("content-type", "application/json"),
                headers={"X-Purple-Request-Id": request_id},
            )
        try:
            data, results = await self._scan_answer(raw, messages, base, started, {})
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        except (OSError, RuntimeError) as exc:
            return _answer_withheld(exc, request_id)
        choices = data["choices"]
        blocked = [i for i, r in enumerate(results) if r.blocked]
        if blocked:
            if self.firewall.policy.on_block == "raise":
                return self._blocked("output", results[blocked[0]].reason, model, False, request_id)
            for index in blocked:
                choices[index]["message"] = {"role": "assistant", "content": self.firewall.policy.refusal}
                choices[index]["finish_reason"] = "content_filter"
        decision = max([inbound.decision] + [r.decision for r in results], key=lambda d: d.rank)
        return JSONResponse(
            data, headers={"X-Purple-Request-Id": request_id, "X-Purple-Decision": str(decision)}
        )

    async def _stream(
        self,
        body: dict[str, Any],
        headers: dict[str, str],
        messages: list[Message],
        base: dict[str, Any],
        request_id: str,
        started: float,
    ) -> Response:
        try:
            response = await self._post_chat(body, headers, base, started)
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        if response.status_code != 200:
            try:
                raw = await _read_capped(response)
            except (_UpstreamError, httpx.HTTPError):
                raw = b'{"error": {"message": "upstream error"}}'
            await self._note_upstream(base, response.status_code, started)
            return Response(
                raw,
                status_code=response.status_code,
                media_type=response.headers.get("content-type", "application/json"),
                headers={"X-Purple-Request-Id": request_id},
            )
        if _is_json(response.headers.get("content-type", "")):  # the upstream ignored `stream`: one completion
            return await self._whole_as_stream(response, body, messages, base, request_id, started)
        check = StreamCheck(self.firewall, messages)
        model = base["model"]

        async def decide(window: int, final: bool) -> FirewallResult:
            result = await check.acheck()
            await self._write_output(
                {
                    **base,
                    "stage": "output",
                    "window": window,
                    "final": final,
                    "upstream_status": 200,
                    "decision": str(result.decision),
                    "reason": result.reason,
                    "results": [result.to_dict()],
                    "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                base,
                started,
                {"window": window, "final": final},
                f"window {window}",
            )
            return result

        async def events() -> AsyncIterator[bytes]:
            held: list[bytes] = []
            window = 0
            pieces = response.aiter_bytes()
            try:
                head = await _head(pieces)  # the first bytes only: a real stream is not held up
                if head.lstrip(_BLANK).startswith(b"{"):  # one JSON body, whatever its Content-Type said
                    raw = await _collect(_chained(head, pieces))
                    for event in await self._whole_events(raw, body, messages, base, started):
                        yield event
                    return
                events_seen = 0
                async for data in _sse_data(_chained(head, pieces)):
                    events_seen += 1
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if not isinstance(chunk, dict):
                        raise ValueError("a stream event is not a JSON object")
                    if check.due_before(chunk):
                        window += 1
                        result = await decide(window, final=False)
                        if result.blocked:
                            for event in self._blocked_events(result.reason, model):
                                yield event
                            return
                        for event in held:
                            yield event
                        held.clear()
                    check.feed(chunk)
                    held.append(b"data: " + data.encode() + b"\n\n")
                if not events_seen:
                    await self._note_upstream(base, 502, started)
                    raise _UpstreamError(
                        502,
                        "the upstream answered a streamed request with neither server-sent events "
                        "nor a chat completion",
                        "bad_upstream",
                    )
                result = await decide(window + 1, final=True)
                if result.blocked:
                    for event in self._blocked_events(result.reason, model):
                        yield event
                    return
                for event in held:
                    yield event
                yield b"data: [DONE]\n\n"
            except (OSError, RuntimeError) as exc:  # the audit log failed: nothing more goes out unrecorded
                log.error("audit log write failed: %s", exc)
                yield _error_event("the audit log cannot be written; answer withheld", "audit_unavailable")
            except _UpstreamError as exc:  # an answer over a size cap, or not one the proxy can read
                yield _error_event(str(exc), exc.code)
            except httpx.HTTPError as exc:
                yield _error_event(f"the upstream stream broke off: {_reason(exc)}", "upstream_error")
            except ValueError as exc:
                yield _error_event(
                    f"the upstream sent an unreadable stream event: {_reason(exc)}", "bad_upstream"
                )
            finally:
                await response.aclose()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"X-Purple-Request-Id": request_id, "Cache-Control": "no-cache"},
        )

    async def _whole_as_stream(
        self,
        response: httpx.Response,
        body: dict[str, Any],
        messages: list[Message],
        base: dict[str, Any],
        request_id: str,
        started: float,
    ) -> Response:
        """A whole completion answering a streamed request: scanned whole as a non-streamed answer is, then sent as
        chunks (or as a blocked stream: an error event, or the refusal)."""
        try:
            raw = await self._read_answer(response, base, started)
            events = await self._whole_events(raw, body, messages, base, started)
        except _UpstreamError as exc:
            return _error(exc.status, str(exc), exc.code, request_id)
        except (OSError, RuntimeError) as exc:
            return _answer_withheld(exc, request_id)
        return StreamingResponse(
            iter(events),
            media_type="text/event-stream",
            headers={"X-Purple-Request-Id": request_id, "Cache-Control": "no-cache"},
        )

    async def _whole_events(
        self, raw: bytes, body: dict[str, Any], messages: list[Message], base: dict[str, Any], started: float
    ) -> list[bytes]:
        """A whole completion (`raw`) scanned and recorded, as the events that answer a streamed request.

        Raises as _scan_answer does.
        """
        data, results = await self._scan_answer(
            raw, messages, base, started, {"window": 1, "final": True, "upstream_streamed": False}
        )
        blocked = next((r for r in results if r.blocked), None)
        if blocked is not None:
            return self._blocked_events(blocked.reason, base["model"])
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        events = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in completion_chunks(data, usage)]
        events.append(b"data: [DONE]\n\n")
        return events

    # ------------------------------------------------------------------------------------------- helpers
    async def _post_chat(
        self, body: dict[str, Any], headers: dict[str, str], base: dict[str, Any], started: float
    ) -> httpx.Response:
        """Send the chat request upstream (the caller reads the answer); _UpstreamError, noted in the log, when it
        cannot be sent."""
        try:
            return await self.client.send(
                self.client.build_request(
                    "POST", f"{self.upstream}/chat/completions", json=body, headers=headers
                ),
                stream=True,
            )
        except httpx.HTTPError as exc:
            failure = _upstream_failure(exc, self.upstream, self.timeout_s)
            await self._note_upstream(base, failure.status, started)
            raise failure from None

    async def _read_answer(self, response: httpx.Response, base: dict[str, Any], started: float) -> bytes:
        """The upstream's whole answer; _UpstreamError, noted in the log, when it breaks off or passes the cap."""
        try:
            return await _read_capped(response)
        except _UpstreamError as exc:
            await self._note_upstream(base, exc.status, started)
            raise
        except httpx.HTTPError as exc:
            failure = _upstream_failure(exc, self.upstream, self.timeout_s)
            await self._note_upstream(base, failure.status, started)
            raise failure from None

    async def _scan_answer(
        self,
        raw: bytes,
        messages: list[Message],
        base: dict[str, Any],
        started: float,
        extra: dict[str, Any],
    ) -> tuple[dict[str, Any], list[FirewallResult]]:
        """Read a whole chat completion, scan every choice and record the outcome (with `extra`).

        _UpstreamError (noted in the log) when it is not a chat completion or its record is over the log's
        cap; OSError or RuntimeError when the audit log cannot be written.
        """
        try:
            data = json.loads(raw)
            outputs = [_choice_message(choice) for choice in data["choices"]]
        except (ValueError, KeyError, TypeError):
            await self._note_upstream(base, 502, started)
            raise _UpstreamError(
                502, "the upstream answered with something that is not a chat completion", "bad_upstream"
            ) from None
        results = [await self.firewall.ascan(message, messages) for message in outputs]
        outbound = max(results, key=lambda r: r.decision.rank) if results else None
        await self._write_output(
            {
                **base,
                "stage": "output",
                **extra,
                "upstream_status": 200,
                "choices": len(results),
                "decision": str(outbound.decision) if outbound else "allow",
                "reason": outbound.reason if outbound else "no choices",
                "results": [r.to_dict() for r in results],
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
            },
            base,
            started,
            {**extra, "choices": len(results)},
            f"{len(results)} choices scanned",
        )
        return data, results

    async def _write_output(
        self, record: dict[str, Any], base: dict[str, Any], started: float, where: dict[str, Any], what: str
    ) -> None:
        """Write an output record; OSError or RuntimeError when the log cannot be written.

        A record over the log's cap cannot be kept, so the answer is withheld: an `output_withheld` record
        (with `where`) says so, then _UpstreamError 502 `answer_too_large` (the log works; this answer cannot
        pass).
        """
        try:
            await self.audit.awrite(record)
        except ValueError:
            withheld = {**base, "stage": "output_withheld", "code": "answer_too_large", **where}
            await self._note(withheld, started)
            raise _UpstreamError(
                502,
                f"the answer's audit record would be larger than {MAX_RECORD_BYTES:,} bytes ({what}); "
                "answer withheld",
                "answer_too_large",
            ) from None

    async def _json_body(self, request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _UpstreamError(
                413, f"request body larger than {self.max_body_bytes:,} bytes", "request_too_large"
            )
        received = bytearray()
        async for piece in request.stream():
            received += piece
            if len(received) > self.max_body_bytes:
                raise _UpstreamError(
                    413, f"request body larger than {self.max_body_bytes:,} bytes", "request_too_large"
                )
        try:
            body = json.loads(received)
        except ValueError:
            raise ValueError("the body is not JSON") from None
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return body

    def _blocked(self, stage: str, reason: str, model: str, stream: bool, request_id: str) -> Response:
        headers = {"X-Purple-Request-Id": request_id, "X-Purple-Decision": "block"}
        policy = self.firewall.policy
        if policy.on_block == "raise":
            return _error(
                400, f"blocked by the firewall ({stage}): {reason}", "content_filter", request_id, headers
            )
        if stream:
            events = [
                b"data: " + json.dumps(chunk_dict(model, policy.refusal, None)).encode() + b"\n\n",
                b"data: " + json.dumps(chunk_dict(model, None, "content_filter")).encode() + b"\n\n",
                b"data: [DONE]\n\n",
            ]
            return StreamingResponse(iter(events), media_type="text/event-stream", headers=headers)
        from purple.firewall.messages import completion_dict

        return JSONResponse(completion_dict(model, policy.refusal, "content_filter"), headers=headers)

    def _blocked_events(self, reason: str, model: str) -> list[bytes]:
        policy = self.firewall.policy
        if policy.on_block == "raise":
            return [_error_event(f"blocked by the firewall (output): {reason}", "content_filter")]
        return [
            b"data: " + json.dumps(chunk_dict(model, policy.refusal, None)).encode() + b"\n\n",
            b"data: " + json.dumps(chunk_dict(model, None, "content_filter")).encode() + b"\n\n",
            b"data: [DONE]\n\n",
        ]

    async def _note_upstream(self, base: dict[str, Any], status: int, started: float) -> None:
        """Record that the upstream failed, so the log shows why an input decision has no output decision."""
        await self._note({**base, "stage": "upstream_error", "upstream_status": status}, started)

    async def _note(self, record: dict[str, Any], started: float) -> None:
        """Record why a request ended without an answer (a failed write is only logged)."""
        try:
            elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
            await self.audit.awrite({**record, "elapsed_ms": elapsed_ms})
        except (OSError, RuntimeError) as exc:
            log.error("audit log write failed: %s", exc)


def _request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in FORWARDED_HEADERS if name in headers}


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _choice_message(choice: Any) -> Message:
    message = choice["message"]
    content = output_text(message)
    calls = message.get("tool_calls") or []
    if message.get("function_call"):
        calls = [*calls, {"type": "function", "function": message["function_call"]}]
    return Message("assistant", content, tool_calls=tuple(calls))


def _trace_record(result: TraceResult, messages: Sequence[Message], start: int) -> dict[str, Any]:
    scanned = messages[start : start + len(result.results)]
    return {
        "decision": str(result.decision),
        "reason": result.reason,
        "messages": len(messages),
        "scanned_from": start,
        "results": [
            {
                **r.to_dict(),
                "content_sha256": hashlib.sha256(m.content.encode()).hexdigest(),
                "chars": len(m.content),
            }
            for r, m in zip(result.results, scanned)
        ],
    }


NOT_RETRYABLE = frozenset({"answer_too_large"})
"""Error codes of server errors that the same request would meet again: sent with `x-should-retry: false`, which
OpenAI's clients honour, so a withheld answer is not asked of the upstream again."""


def _error(
    status: int, message: str, code: str, request_id: str, headers: Mapping[str, str] | None = None
) -> Response:
    kind = "invalid_request_error" if status < 500 else "api_error"
    no_retry = {"x-should-retry": "false"} if code in NOT_RETRYABLE else {}
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
        headers={"X-Purple-Request-Id": request_id, **no_retry, **(headers or {})},
    )


def _answer_withheld(exc: Exception, request_id: str) -> Response:
    """The answer's audit record could not be written: it does not go out."""
    log.error("audit log write failed: %s", exc)
    return _error(503, "the audit log cannot be written; answer withheld", "audit_unavailable", request_id)


def _error_event(message: str, code: str) -> bytes:
    payload = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _upstream_failure(exc: httpx.HTTPError, upstream: str, timeout_s: float) -> _UpstreamError:
    if isinstance(exc, httpx.TimeoutException):
        return _UpstreamError(
            504, f"the upstream {upstream} did not answer within {timeout_s:g} s", "upstream_timeout"
        )
    if isinstance(exc, httpx.ConnectError):
        return _UpstreamError(
            502, f"cannot reach the upstream {upstream} ({_reason(exc)})", "upstream_unreachable"
        )
    return _UpstreamError(
        502, f"the request to the upstream {upstream} failed ({_reason(exc)})", "upstream_error"
    )


async def _read_capped(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    try:
        return await _collect(response.aiter_bytes(), limit)
    finally:
        await response.aclose()


async def _collect(pieces: AsyncIterator[bytes], limit: int = MAX_RESPONSE_BYTES) -> bytes:
    received = bytearray()
    async for piece in pieces:
        received += piece
        if len(received) > limit:
            raise _UpstreamError(502, f"the upstream answer is larger than {limit:,} bytes", "bad_upstream")
    return bytes(received)


_BLANK = b" \t\r\n\xef\xbb\xbf"
"""Bytes that may come before a body's first character: whitespace and a UTF-8 byte order mark."""


async def _head(pieces: AsyncIterator[bytes]) -> bytes:
    """A body's first bytes: read until one is not blank, or the body ends (nothing more is waited for)."""
    head = b""
    async for piece in pieces:
        head += piece
        if head.lstrip(_BLANK):
            break
        if len(head) > MAX_EVENT_BYTES:
            raise _UpstreamError(
                502, f"the upstream answer starts with over {MAX_EVENT_BYTES:,} blank bytes", "bad_upstream"
            )
    return head


async def _chained(head: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if head:
        yield head
    async for piece in rest:
        yield piece


async def _sse_data(pieces: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The `data` of each server-sent event, lines joined; _UpstreamError past the event or stream size caps."""
    buffer = b""
    data: list[bytes] = []
    size = total = 0
    async for piece in pieces:
        buffer += piece
        total += len(piece)
        if total > MAX_RESPONSE_BYTES:
            raise _UpstreamError(
                502, f"the upstream stream is larger than {MAX_RESPONSE_BYTES:,} bytes", "bad_upstream"
            )
        while (end := buffer.find(b"\n")) != -1:
            line, buffer = buffer[:end].rstrip(b"\r"), buffer[end + 1 :]
            if not line:
                if data:
                    yield b"\n".join(data).decode("utf-8", errors="replace")
                    data, size = [], 0
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
                size += len(value)
        if size + len(buffer) > MAX_EVENT_BYTES:
            raise _UpstreamError(
                502, f"an upstream stream event is larger than {MAX_EVENT_BYTES:,} bytes", "bad_upstream"
            )
    line = buffer.rstrip(b"\r")
    if line.startswith(b"data:"):
        value = line[5:]
        data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data).decode("utf-8", errors="replace")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
