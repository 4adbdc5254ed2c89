"""Runner throughput: 1,000 prompts against a local OpenAI-compatible endpoint that answers after 200 ms.

Prints wall time against the ideal (prompts x delay / concurrency); the target is at least 80% of ideal.
Run: .venv/bin/python benchmarks/perf/eval.py [--prompts 1000] [--delay 0.2] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import multiprocessing
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from purple.evals.runner import RunConfig, run


def serve(delay_s: float) -> ThreadingHTTPServer:
    """The endpoint: a threading HTTP server that answers every chat request after `delay_s`."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay_s)
            body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Sure, here it is."},
                                            "finish_reason": "stop"}], "usage": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the default backlog of 5 drops simultaneous connects (1 s SYN retries)

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def _serve_in_child(delay_s: float, ports: multiprocessing.Queue) -> None:
    server = serve(delay_s)
    ports.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    # The endpoint runs in its own process, as a real server would, so it does not share the client's GIL.
    ports: multiprocessing.Queue = multiprocessing.Queue()
    endpoint = multiprocessing.Process(target=_serve_in_child, args=(args.delay, ports), daemon=True)
    endpoint.start()
    url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        (data / "mitre_frr").mkdir(parents=True)
        rows = [{"mutated_prompt": f"Benign prompt number {i}.", "attack_type": f"type {i % 5}"} for i in range(args.prompts)]
        (data / "mitre_frr" / "mitre_frr.json").write_text(json.dumps(rows))
        config = RunConfig(models=[f"OPENAI::bench::none::{url}"], benchmarks=["frr"], out=Path(tmp) / "run",
                           concurrency=args.concurrency, data_dir=data, cache_dir=None, progress=False)
        start = time.perf_counter()
        result = run(config)
        wall = time.perf_counter() - start
    endpoint.terminate()
    errors = sum(bool(r.get("error")) for r in result.records)
    ideal = args.prompts * args.delay / args.concurrency
    print(f"prompts={args.prompts} delay={args.delay}s concurrency={args.concurrency} records={len(result.records)} "
          f"errors={errors}")
    print(f"wall={wall:.2f}s ideal={ideal:.2f}s efficiency={ideal / wall:.1%} (target >= 80%)")


if __name__ == "__main__":
    main()
