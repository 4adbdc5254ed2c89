"""`purple eval` speed: runner throughput, or (--judging) instruct judging throughput against the anchor.

Runner throughput: 1,000 prompts against a local OpenAI-compatible endpoint that answers after 200 ms; prints wall
time against the ideal (prompts x delay / concurrency); the target is at least 80% of ideal.
    .venv/bin/python benchmarks/perf/eval.py [--prompts 1000] [--delay 0.2] [--concurrency 32]

Judging throughput (--judging): the 1,916 CyberSecEval instruct cases, each case's origin_code in a ``` fence
standing in for a model's response (real code of the kind the prompt asks for, not a model's output), judged by
Purple's instruct judge (Instruct.judge: batched Code Shield + BLEU) in one call, then end to end through the
runner (`run`, what `purple eval --benchmark instruct --concurrency CHUNK` runs) against a local endpoint that
answers each prompt at once with that fenced code, and, in the same run, by the anchor: CyberSecEval's
per-response judging (first ``` block, then one insecure_code_detector.analyze call per response, sequentially) in
the anchor's own virtualenv (.bench/anchor, see codeshield.py).
    .venv/bin/python benchmarks/perf/eval.py --judging [--datasets ../shared/datasets] [--anchor-limit 0]
        [--anchor-fixed-limit 240] [--chunk 8] [--write]   (--chunk: the runner's --concurrency)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from purple.evals.instruct import Instruct
from purple.evals.runner import RunConfig, _Judging, judge_batch, run

HERE = Path(__file__).resolve().parent
ANCHOR_PYTHON = HERE.parents[1] / ".bench" / "anchor" / "bin" / "python"
RESULTS = HERE / "results" / "eval.txt"
JUDGING_HEADER = "# instruct judging throughput (benchmarks/perf/eval.py --judging)"
WARM_UP = 8
DEFAULT_DATASETS = Path(os.environ.get("PURPLE_DATASETS", HERE.parents[1] / ".." / "shared" / "datasets"))


def serve(delay_s: float, answers: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """The endpoint: a threading HTTP server that answers every chat request after `delay_s`, with
    answers[last message] when that is given, else a fixed sentence."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle on, the body waits for the client's delayed ACK
        # (40 ms on Linux), which made every answer take delay + ~44 ms; real servers (uvicorn, vLLM) set this too
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            time.sleep(delay_s)
            prompt = str((request.get("messages") or [{}])[-1].get("content", ""))
            content = (answers or {}).get(prompt, "Sure, here it is.")
            body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
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


def _serve_in_child(delay_s: float, ports: multiprocessing.Queue, answers: dict[str, str] | None) -> None:
    server = serve(delay_s, answers)
    ports.put(server.server_address[1])
    server.serve_forever()


def start_endpoint(delay_s: float, answers: dict[str, str] | None = None) -> tuple[multiprocessing.Process, str]:
    """The endpoint in its own process, as a real server would be, so it does not share the client's GIL; returns
    the process and its base URL."""
    ports: multiprocessing.Queue = multiprocessing.Queue()
    endpoint = multiprocessing.Process(target=_serve_in_child, args=(delay_s, ports, answers), daemon=True)
    endpoint.start()
    return endpoint, f"http://127.0.0.1:{ports.get(timeout=30)}/v1"


def runner_throughput(args: argparse.Namespace) -> None:
    """Wall time of `run` on --prompts frr cases against an endpoint that answers after --delay seconds."""
    endpoint, url = start_endpoint(args.delay)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        (data / "mitre_frr").mkdir(parents=True)
        rows = [{"mutated_prompt": f"Benign prompt number {i}.", "attack_type": f"type {i % 5}"}
                for i in range(args.prompts)]
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


def fenced(code: str, language: str) -> str:
    """A stand-in for a model's response: the code in a ``` fence tagged with its language."""
    return f"```{language}\n{code}\n```"


def stride(count: int, limit: int) -> list[int]:
    """Indices of an even stride of `limit` out of `count` (all when limit is 0 or at least count)."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    step = count / limit
    return [int(i * step) for i in range(limit)]


def judge_through_runner(datasets: Path, answers: dict[str, str], concurrency: int) -> tuple[int, int, float]:
    """`run` on every instruct case of `datasets`/cyberseceval against an endpoint that answers each prompt at once
    with answers[prompt]; returns (records, vulnerable, wall seconds, building Code Shield included)."""
    endpoint, url = start_endpoint(0.0, answers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = RunConfig(models=[f"OPENAI::bench::none::{url}"], benchmarks=["instruct"], out=Path(tmp) / "run",
                               concurrency=concurrency, data_dir=datasets / "cyberseceval", cache_dir=None,
                               progress=False)
            start = time.perf_counter()
            records = run(config).records
            wall = time.perf_counter() - start
    finally:
        endpoint.terminate()
    errors = [r["error"] for r in records if r.get("error")]
    if errors:
        raise SystemExit(f"eval benchmark: {len(errors)} runner case(s) failed, first: {errors[0]}")
    return len(records), sum(r["scores"]["vulnerable_rate"] >= 1.0 for r in records), wall


def anchor_judge(responses: Sequence[str], languages: Sequence[str], fix_semgrep: bool) -> tuple[list[bool], float]:
    """CyberSecEval's per-response judging in the anchor's venv: (vulnerable per response, wall seconds)."""
    command = [str(ANCHOR_PYTHON), str(HERE / "anchor_codeshield_worker.py"), "--cyberseceval", "--concurrency", "1"]
    if fix_semgrep:
        command.append("--fix-semgrep")
    payload = "".join(json.dumps({"code": r, "language": lang}) + "\n" for r, lang in zip(responses, languages))
    proc = subprocess.run(command, input=payload, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"anchor worker failed: {proc.stderr.strip().splitlines()[-1:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return [bool(row["findings"]) for row in rows[:-1]], rows[-1]["wall_seconds"]


def judging_throughput(args: argparse.Namespace) -> list[str]:
    """Purple's batched instruct judging against the anchor's per-response judging; returns the report lines."""
    path = args.datasets / "cyberseceval" / "instruct" / "instruct.json"
    if not path.is_file():
        raise SystemExit(f"eval benchmark: dataset not found: {path} (use --datasets or PURPLE_DATASETS)")
    if not ANCHOR_PYTHON.exists():
        raise SystemExit(f"eval benchmark: no anchor venv at {ANCHOR_PYTHON}: "
                         "run benchmarks/perf/codeshield.py once (it creates it)")
    samples = Instruct().load(path)
    languages = [str(s.data["language"]) for s in samples]
    responses = [fenced(str(s.data["origin_code"]), lang) for s, lang in zip(samples, languages)]
    count = len(samples)
    lines = [
        JUDGING_HEADER,
        "command: .venv/bin/python benchmarks/perf/eval.py " + " ".join(sys.argv[1:]),
        f"machine: {platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.2f} (shared machine)",
        f"responses: {count} CyberSecEval instruct cases, each origin_code in a ```<language> fence as a stand-in "
        "for a model's response (real code of the kind the prompt asks for, not model output)",
        "vulnerable: the judge reports at least one finding (CyberSecEval: icd_result != [])",
    ]

    bench = Instruct()
    ctx = _Judging(None)
    start = time.perf_counter()
    shield = ctx.code_shield
    setup = time.perf_counter() - start
    asyncio.run(bench.judge(samples[:WARM_UP], responses[:WARM_UP], ctx))  # semgrep binary, file cache
    start = time.perf_counter()
    judged = asyncio.run(bench.judge(samples, responses, ctx))
    batch_wall = time.perf_counter() - start
    ours = [j.scores["vulnerable_rate"] >= 1.0 for j in judged]
    answers = {s.conversation[-1].content: response for s, response in zip(samples, responses)}
    records, runner_vulnerable, runner_wall = judge_through_runner(args.datasets, answers, args.chunk)
    if records != count:
        raise SystemExit(f"eval benchmark: the runner wrote {records} records for {count} cases")
    runner_label = f"runner --concurrency {args.chunk}"
    semgrep = "on" if shield.semgrep.available else "OFF"
    lines.append(f"purple: Instruct.judge (Code Shield, {len(shield.ruleset.regex)} regex + "
                 f"{len(shield.ruleset.semgrep)} semgrep rules, semgrep {semgrep}; BLEU)")
    lines.append(f"  not counted: building Code Shield ({setup:.2f}s) and a warm-up judging of {WARM_UP} responses")
    lines.append(f"  purple, one batch: {count} responses in {batch_wall:.2f}s = {count / batch_wall:.1f} responses/s; "
                 f"vulnerable {sum(ours)}/{count}")
    lines.append(f"  purple, {runner_label}: {count} responses generated, judged and journalled in {runner_wall:.2f}s "
                 f"= {count / runner_wall:.1f} judged responses/s; vulnerable {runner_vulnerable}/{count}")
    lines.append(f"  ({runner_label}: `run` as `purple eval --benchmark instruct --concurrency {args.chunk} --no-cache` "
                 f"runs it, end to end: dataset, a local endpoint in its own process answering each prompt at once "
                 f"with the fenced origin_code, judge batches of {judge_batch(bench, args.chunk)}, building Code "
                 f"Shield, records.jsonl; {count - len(answers)} prompts occur twice with different origin_code and "
                 f"both get one of them)")
    rates = {"one batch": count / batch_wall, runner_label: count / runner_wall}

    lines.append("anchor: codeshield 1.0.1's insecure_code_detector.analyze, one call per response, sequential, "
                 "as CyberSecEval's instruct benchmark judges")
    lines.append("  (semgrep fixed: the published package passes `--project-root /` to semgrep, with which current "
                 "semgrep scans no file; the worker drops it)")
    for label, fix, limit in (("as published", False, args.anchor_limit),
                              ("semgrep fixed", True, args.anchor_fixed_limit)):
        if limit < 0:
            continue
        picked = stride(count, limit)
        flags, wall = anchor_judge([responses[i] for i in picked], [languages[i] for i in picked], fix)
        rate = len(picked) / wall
        which = "all responses" if len(picked) == count else (
            f"an even-stride subset (every {count / len(picked):.2f}th case; a full pass would take about "
            f"{count / rate / 60:.0f} min here)")
        lines.append(f"  anchor, {label}, {which}: {len(picked)} responses in {wall:.2f}s = {rate:.2f} responses/s; "
                     f"vulnerable {sum(flags)}/{len(picked)} (purple on the same: "
                     f"{sum(ours[i] for i in picked)}/{len(picked)})")
        lines.append("  ratio to anchor " + label + ": "
                     + "; ".join(f"purple {name} {ours_rate / rate:.1f}x" for name, ours_rate in rates.items()))
    return lines


def write_judging(lines: Sequence[str], results: Path = RESULTS) -> None:
    """Replace the judging section of the results file (the runner section above it stays as it is)."""
    previous = results.read_text(encoding="utf-8") if results.exists() else ""
    kept = previous.split(JUDGING_HEADER)[0].rstrip("\n")
    results.write_text((kept + "\n\n" if kept else "") + "\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--judging", action="store_true", help="measure instruct judging against the anchor instead")
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding cyberseceval/")
    parser.add_argument("--anchor-limit", type=int, default=0,
                        help="anchor as published: an even stride of N responses (0: all, -1: skip)")
    parser.add_argument("--anchor-fixed-limit", type=int, default=240,
                        help="anchor with semgrep fixed: an even stride of N responses (0: all, -1: skip)")
    parser.add_argument("--chunk", type=int, default=8, help="purple eval --concurrency of the runner row (8)")
    parser.add_argument("--write", action="store_true", help=f"write the judging section into {RESULTS.name}")
    args = parser.parse_args()
    if not args.judging:
        runner_throughput(args)
        return
    if args.chunk < 1:
        raise SystemExit("eval benchmark: --chunk must be at least 1")
    lines = judging_throughput(args)
    print("\n".join(lines))
    if args.write:
        write_judging(lines)


if __name__ == "__main__":
    main()
