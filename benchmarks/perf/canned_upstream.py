"""A fast OpenAI-compatible upstream with a canned answer, for load-testing the proxy on 127.0.0.1 only.

    python benchmarks/perf/canned_upstream.py [--port 0]

Prints `listening on http://127.0.0.1:PORT/v1` on stdout once it serves. Answers /v1/chat/completions (streamed in
8 chunks when asked) and /v1/models. It does no model work, so the proxy, not the upstream, sets the pace.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ANSWER = (
    "Here is a short answer. The function below reads the file, counts the words and returns the ten most common "
    "ones; it streams the file line by line so memory stays flat for large inputs.\n\n```python\n"
    "from collections import Counter\n\n\ndef top_words(path, n=10):\n    counts = Counter()\n"
    "    with open(path, encoding='utf-8') as handle:\n        for line in handle:\n"
    "            counts.update(line.lower().split())\n    return counts.most_common(n)\n```\n\n"
    "Call it as top_words('book.txt'). Let me know if you want it to ignore punctuation as well."
)


async def chat(request: Request) -> Response:
    body = json.loads(await request.body())
    model = body.get("model", "canned")
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-canned",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420},
            }
        )

    async def events() -> AsyncIterator[bytes]:
        size = len(ANSWER) // 8 + 1
        for i in range(0, len(ANSWER), size):
            chunk = {
                "id": "chatcmpl-canned",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {"content": ANSWER[i : i + size]}, "finish_reason": None}],
            }
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        done = {
            "id": "chatcmpl-canned",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        yield b"data: " + json.dumps(done).encode() + b"\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "canned", "object": "model"}]})


app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]), Route("/v1/models", models)])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
    sys.stdout.flush()
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


if __name__ == "__main__":
    main()
