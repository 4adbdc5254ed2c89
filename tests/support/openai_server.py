"""A small OpenAI-compatible HTTP server on 127.0.0.1 that serves a local Purple model, for tests.

It speaks `/v1/chat/completions` (the model's chat template, `chat_template_kwargs` as vLLM takes them) and
`/v1/completions` (raw prompt; the begin-of-text token is added as vLLM and llama.cpp do), both with
log-probabilities in OpenAI's shapes. It can demand a bearer key and answer the next requests with chosen HTTP
errors, to exercise retries. Reusable by any test that needs a real endpoint.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from purple.models.base import GenerationParams

MAX_BODY = 5_000_000


class OpenAIServer:
    """Serve `model` (an HFModel) until the context ends. `url` is the base URL, ending in /v1."""

    def __init__(self, model: Any, api_key: str | None = None, max_top_logprobs: int = 1000) -> None:
        self.model = model
        self.api_key = api_key
        self.max_top_logprobs = max_top_logprobs
        self.fail_next: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # --------------------------------------------------------------------------------------------- requests
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model.name, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, {"error": {"message": "request too large"}})
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                auth = self.headers.get("Authorization", "")
                server.requests.append({"path": self.path, "body": body, "authorized": bool(auth)})
                if server.api_key is not None and auth != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "Incorrect API key provided"}})
                    return
                if server.fail_next:
                    status = server.fail_next.pop(0)
                    self._send(status, {"error": {"message": f"injected {status}"}}, {"Retry-After": "0"})
                    return
                if server.delay_s:
                    time.sleep(server.delay_s)
                try:
                    if self.path == "/v1/chat/completions":
                        self._send(200, server._chat(body))
                    elif self.path == "/v1/completions":
                        self._send(200, server._completion(body))
                    else:
                        self._send(404, {"error": {"message": f"no route {self.path}"}})
                except (KeyError, TypeError, ValueError) as exc:
                    self._send(400, {"error": {"message": str(exc)}})

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _params(self, body: dict[str, Any], top: int) -> GenerationParams:
        return GenerationParams(
            max_tokens=int(body.get("max_tokens") or 16),
            temperature=float(body.get("temperature") or 0.0),
            top_logprobs=min(top, self.max_top_logprobs),
            stop=tuple(body.get("stop") or ()),
        )

    def _run(self, prompt: str, params: GenerationParams) -> Any:
        with self._lock:
            completion = self.model.complete([prompt], params)[0]
        if completion.error:
            raise ValueError(completion.error)
        return completion

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        kwargs = body.get("chat_template_kwargs") or {}
        prompt = self.model.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **kwargs
        )
        top = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        completion = self._run(prompt, self._params(body, top))
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": completion.text},
            "finish_reason": "stop",
        }
        if top and completion.logprobs is not None:
            choice["logprobs"] = {
                "content": [
                    {
                        "token": token,
                        "logprob": step.get(token, min(step.values())),
                        "top_logprobs": [{"token": t, "logprob": lp} for t, lp in step.items()],
                    }
                    for token, step in zip(completion.tokens or (), completion.logprobs)
                ]
            }
        return {"id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"), "choices": [choice],
                "usage": completion.usage}

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body["prompt"])
        top = int(body.get("logprobs") or 0)
        bos = self.model.tokenizer.bos_token or ""
        completion = self._run(bos + prompt, self._params(body, top))
        choice: dict[str, Any] = {"index": 0, "text": completion.text, "finish_reason": "stop", "logprobs": None}
        if top and completion.logprobs is not None:
            choice["logprobs"] = {
                "tokens": list(completion.tokens or ()),
                "token_logprobs": [step.get(t) for t, step in zip(completion.tokens or (), completion.logprobs)],
                "top_logprobs": [dict(step) for step in completion.logprobs],
            }
        return {"id": "cmpl-test", "object": "text_completion", "model": body.get("model"), "choices": [choice],
                "usage": completion.usage}
