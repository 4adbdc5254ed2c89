"""The firewall's speed, against the `llamafirewall` package (the anchor) in the same run.

    .venv/bin/python benchmarks/perf/firewall.py [--datasets ../shared/datasets] [--messages 100]
        [--code-messages 200] [--load-seconds 60] [--clients 50] [--out benchmarks/perf/results]

1. Added latency per message (p50, p99), one call per message, the same messages on both sides, calls alternating
   between the anchor and ours so machine load hits both alike:
   - 256-token user messages (real prompts and injections from ../shared/datasets, cut to 256 tokens):
     ours with its default offline detectors (the chatbot preset: injection model, hidden Unicode, secrets) when the
     shipped injection model is present; ours and the anchor with the same Prompt-Guard-2-86M-shaped model
     (random weights, real shape, saved locally: the only Prompt Guard the anchor can load offline); the rule
     scanners alone (hidden Unicode and regex);
   - assistant messages holding code (CyberSecEval instruct snippets in a fenced block): Code Shield, hidden
     Unicode and regex on both sides.
   The anchor runs in its own virtualenv (.bench/llamafirewall: torch 2.13.0 CPU, llamafirewall 1.0.3,
   huggingface_hub<1.0 and transformers<5, which its PROMPT_GUARD scanner needs), called through
   `LlamaFirewall(config).scan(message)` as an app would.
2. The proxy (`purple serve`) under `--clients` concurrent clients for `--load-seconds` on 127.0.0.1, in front of a
   canned upstream (no model work, so the proxy sets the pace), against the same load sent straight to the
   upstream: requests per second, p50, p99, errors, and audit-log entries checked against every answered request.

Writes benchmarks/perf/results/firewall.md and firewall.json.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # set before torch loads: both sides' idle threads sleep

import argparse
import asyncio
import gzip
import json
import platform
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from instruct_detection import DEFAULT_DATASETS, load_instruct  # noqa: E402

BENCH = ROOT / ".bench"
ANCHOR_VENV = BENCH / "llamafirewall"
HF_HOME = BENCH / "hf-home"
PG2_DIR = HF_HOME / "meta-llama--Llama-Prompt-Guard-2-86M"
WORK = BENCH / "firewall"
TOKENS = 256
PG, HIDDEN, REGEX, CODE = "prompt_guard", "hidden_ascii", "regex", "code_shield"


# ------------------------------------------------------------------------------------------------ anchor
def ensure_anchor() -> Path:
    python = ANCHOR_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "llamafirewall==1.0.3", "huggingface_hub<1.0", "transformers<5"], check=True)
    return python


def ensure_pg2_model(python: Path, texts: list[str]) -> None:
    if (PG2_DIR / "model.safetensors").is_file():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = WORK / "tokenizer-texts.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
    subprocess.run(
        [
            str(python),
            str(HERE / "anchor_llamafirewall_worker.py"),
            "--make-model",
            str(PG2_DIR),
            "--texts",
            str(corpus),
        ],
        check=True,
    )


class Anchor:
    """The anchor worker process: one scan request at a time over pipes."""

    def __init__(self, python: Path) -> None:
        env = {
            **os.environ,
            "HF_HOME": str(HF_HOME),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_WAIT_POLICY": "PASSIVE",  # idle OpenMP threads sleep instead of spinning on the cores ours is timed on
        }
        self.log = (WORK / "anchor-stderr.log").open("w")
        self.proc = subprocess.Popen(
            [str(python), str(HERE / "anchor_llamafirewall_worker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )

    def scan(self, role: str, content: str, scanners: Sequence[str], reuse: bool = False) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(
            json.dumps({"role": role, "content": content, "scanners": list(scanners), "reuse": reuse}) + "\n"
        )
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the anchor worker stopped; see {self.log.name}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


# ---------------------------------------------------------------------------------------------- messages
def read_texts(datasets: Path, seed: int) -> tuple[list[str], list[str]]:
    """(benign prompts, injections) from the shared datasets, shuffled."""
    halves: list[list[str]] = []
    for name in ("benign_prompts_large/prompts.jsonl.gz", "injection_extra/injections.jsonl.gz"):
        with gzip.open(datasets / name, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line)["text"] for line in handle if line.strip()]
        random.Random(seed).shuffle(rows)
        halves.append(rows[:6000])
    return halves[0], halves[1]


def cut_messages(texts: list[str], tokenizer: Any, count: int) -> list[str]:
    """`count` messages of exactly TOKENS tokens: dataset texts joined until long enough, then cut."""
    messages: list[str] = []
    pending = ""
    for text in texts:
        pending = f"{pending}\n\n{text}" if pending else text
        encoding = tokenizer.encode(pending, add_special_tokens=False)
        if len(encoding.ids) >= TOKENS:
            messages.append(pending[: encoding.offsets[TOKENS - 1][1]])
            pending = ""
            if len(messages) == count:
                return messages
    raise SystemExit(f"not enough text for {count} messages of {TOKENS} tokens")


def code_messages(datasets: Path, count: int) -> list[str]:
    cases = load_instruct(datasets)
    step = len(cases) / count
    chosen = [cases[int(i * step)] for i in range(count)]
    return [
        f"Here is the implementation you asked for:\n\n```{c.language}\n{c.code}\n```\n\nLet me know if it works."
        for c in chosen
    ]


def shipped_detector() -> tuple[Any, str]:
    try:
        from purple.promptguard import default_detector

        return default_detector(), ""
    except Exception as exc:  # noqa: BLE001 - reported in the results
        return None, f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------------------- latency
def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarize(seconds: list[float], blocked: int) -> dict[str, Any]:
    return {
        "p50_ms": 1000 * percentile(seconds, 50),
        "p99_ms": 1000 * percentile(seconds, 99),
        "mean_ms": 1000 * sum(seconds) / len(seconds),
        "n": len(seconds),
        "blocked": blocked,
    }


def measure_latency(anchor: Anchor, users: list[str], codes: list[str], shipped: Any) -> list[dict[str, Any]]:
    from purple.firewall import Firewall, Policy, preset
    from purple.promptguard import PromptGuard
    from purple.types import Message

    chatbot = preset("chatbot")
    pg2 = PromptGuard.from_pretrained(PG2_DIR, version=2)
    firewalls = {
        "rules": Firewall(Policy(roles={"user": ["hidden_unicode", "secrets", "pii"]})),
        "pg2": Firewall(
            Policy(
                roles={"user": ["pg2", "hidden_unicode", "secrets"]}, detectors={"pg2": pg2}, budget_ms=60_000
            )
        ),
        "code": Firewall(
            Policy(roles={"assistant": chatbot.roles["assistant"]}, detectors=chatbot.detectors)
        ),
    }
    if shipped is not None:
        firewalls["default"] = Firewall(chatbot)
    # Each entry scans one message and says whether it was blocked.
    ours: dict[str, Callable[[Message], bool]] = {
        key: (lambda message, fw=firewall: fw.scan(message).blocked) for key, firewall in firewalls.items()
    }
    if shipped is not None:  # the injection model on its own: the rest of the default row is the pipeline
        ours["model"] = lambda message: shipped.check([message]).decision == "block"

    rows: list[dict[str, Any]] = []

    def run(
        label: str,
        role: str,
        messages: list[str],
        scanners: Sequence[str],
        keys: Sequence[str],
        reuse: bool = False,
    ) -> None:
        anchor_times: list[float] = []
        anchor_blocked = 0
        our_times: dict[str, list[float]] = {k: [] for k in keys}
        our_blocked = dict.fromkeys(keys, 0)
        for index, text in enumerate([*messages[:3], *messages]):  # the first three warm both sides up
            answer = anchor.scan(role, text, scanners, reuse)
            for key in keys:
                start = time.perf_counter()
                blocked = ours[key](Message(role, text))  # type: ignore[arg-type]
                elapsed = time.perf_counter() - start
                if index >= 3:
                    our_times[key].append(elapsed)
                    our_blocked[key] += blocked
            if index >= 3:
                anchor_times.append(answer["seconds"])
                anchor_blocked += answer["decision"] == "block"
        anchor_summary = summarize(anchor_times, anchor_blocked)
        for key in keys:
            rows.append(
                {
                    "row": label,
                    "ours_config": key,
                    "anchor_scanners": list(scanners),
                    "anchor_reused": reuse,
                    "ours": summarize(our_times[key], our_blocked[key]),
                    "anchor": anchor_summary,
                }
            )
        print(
            f"  {label}: anchor p50 {anchor_summary['p50_ms']:.1f} ms; "
            + ", ".join(f"{k} p50 {1000 * percentile(v, 50):.2f} ms" for k, v in our_times.items()),
            file=sys.stderr,
        )

    keys = ["default", "model", "pg2"] if "default" in ours else ["pg2"]
    run("user, 256 tokens, Prompt Guard + hidden + regex", "user", users, [PG, HIDDEN, REGEX], keys)
    run("user, 256 tokens, rule scanners only", "user", users, [HIDDEN, REGEX], ["rules"])
    run("assistant, code in a fenced block", "assistant", codes, [CODE, HIDDEN, REGEX], ["code"])
    run(
        "user, 256 tokens, anchor's Prompt Guard scanner built once",
        "user",
        users[:30],
        [PG],
        ["pg2"],
        reuse=True,
    )
    return rows


# -------------------------------------------------------------------------------------------------- load
async def load(url: str, seconds: float, clients: int, prompts: list[str]) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    answered: list[tuple[str, bool]] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                body = {
                    "model": "canned",
                    "max_tokens": 128,
                    "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                }
                stream = i % 5 == 0
                i += clients
                start = time.perf_counter()
                try:
                    if stream:
                        async with client.stream(
                            "POST",
                            f"{url}/chat/completions",
                            json={**body, "stream": True},
                            headers={"Authorization": "Bearer sk-load-test"},
                        ) as response:
                            text = "".join([line async for line in response.aiter_lines()])
                            ok = (
                                response.status_code == 200
                                and "data: [DONE]" in text
                                and '"error"' not in text
                            )
                            status = (
                                str(response.status_code)
                                if ok or response.status_code != 200
                                else "stream-error"
                            )
                            request_id = response.headers.get("x-purple-request-id")
                    else:
                        response = await client.post(
                            f"{url}/chat/completions",
                            json=body,
                            headers={"Authorization": "Bearer sk-load-test"},
                        )
                        status = str(response.status_code)
                        request_id = response.headers.get("x-purple-request-id")
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                    request_id = None
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if status == "200" and request_id:
                    answered.append((request_id, stream))

        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.monotonic() - started
    ok = statuses.get("200", 0)
    blocked = statuses.get("400", 0)
    return {
        "requests": len(latencies),
        "ok": ok,
        "blocked": blocked,
        "errors": len(latencies) - ok - blocked,
        "statuses": statuses,
        "wall_s": wall,
        "rps": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "answered": answered,
    }


def start_process(
    args: list[str], ready: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start a server and return it with the URL from the line it prints when ready (stdout or stderr)."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    stream = proc.stdout if ready == "stdout" else proc.stderr
    assert stream is not None
    line = stream.readline()
    if "http://" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, "http" + line.split("http", 1)[1].split()[0]


CHATBOT_YAML = """\
name: {name}
budget_ms: {budget_ms}
detectors:
  code_shield: {{semgrep: false}}
roles:
  system: [hidden_unicode]
  user: [{injection}hidden_unicode, secrets]
  assistant: [code_shield, hidden_unicode, secrets, pii]
  tool: [{injection}hidden_unicode, code_shield]
  memory: [{injection}hidden_unicode]
"""


def load_policies(shipped: bool) -> list[tuple[str, str]]:
    """(label, --policy value) for each proxy run: the rule detectors alone, then the chatbot preset as shipped and
    with a budget long enough that queueing shows as latency instead of fail-closed blocks."""
    rules = WORK / "chatbot-without-injection.yaml"
    rules.write_text(
        CHATBOT_YAML.format(name="chatbot-without-injection", budget_ms=1000, injection=""), "utf-8"
    )
    policies = [("chatbot without the injection model", str(rules))]
    if shipped:
        patient = WORK / "chatbot-budget-30s.yaml"
        patient.write_text(
            CHATBOT_YAML.format(name="chatbot-budget-30s", budget_ms=30_000, injection="injection, "), "utf-8"
        )
        policies += [("chatbot preset (1 s budget)", "chatbot"), ("chatbot, 30 s budget", str(patient))]
    return policies


def through_proxy(
    upstream_url: str, policy: str, seconds: float, clients: int, prompts: list[str]
) -> dict[str, Any]:
    """The load through `purple serve --policy POLICY`, with its audit log checked afterwards."""
    from purple.firewall.audit import read_records

    audit = WORK / "load-audit.jsonl"
    audit.unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        "purple.cli",
        "serve",
        "--upstream",
        upstream_url,
        "--policy",
        policy,
        "--port",
        "0",
        "--audit-log",
        str(audit),
    ]
    proxy, proxy_url = start_process(command, "stderr")
    try:
        result = asyncio.run(load(proxy_url, seconds, clients, prompts))
    finally:
        proxy.send_signal(signal.SIGTERM)
        _, proxy_err = proxy.communicate(timeout=60)
    records = list(read_records(audit))
    stages: dict[str, set[str]] = {}
    for record in records:
        if record["stage"] == "input" or (record["stage"] == "output" and record.get("final", True)):
            stages.setdefault(record["request_id"], set()).add(record["stage"])
    lost = sum(2 - len(stages.get(rid, set()) & {"input", "output"}) for rid, _ in result.pop("answered"))
    budget_blocks = sum(
        1 for r in records if r["stage"] == "input" and r["decision"] == "block" and "budget" in r["reason"]
    )
    result.update(
        {
            "audit_records": len(records),
            "lost_audit_entries": lost,
            "budget_blocks": budget_blocks,
            "proxy_exit": proxy.returncode,
            "api_key_in_log": "sk-load-test" in audit.read_text() or "sk-load-test" in proxy_err,
        }
    )
    return result


def measure_load(seconds: float, clients: int, prompts: list[str], shipped: bool) -> dict[str, Any]:
    WORK.mkdir(parents=True, exist_ok=True)
    upstream, upstream_url = start_process([sys.executable, str(HERE / "canned_upstream.py")], "stdout")
    try:
        print(f"  direct to the upstream, {clients} clients, {seconds:g} s", file=sys.stderr)
        direct = asyncio.run(load(upstream_url, seconds, clients, prompts))
        direct.pop("answered")
        runs = []
        for label, policy in load_policies(shipped):
            print(f"  through the proxy ({label}), {clients} clients, {seconds:g} s", file=sys.stderr)
            runs.append({"label": label, **through_proxy(upstream_url, policy, seconds, clients, prompts)})
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    return {"direct": direct, "proxy": runs}


# ------------------------------------------------------------------------------------------------ report
def render(report: dict[str, Any]) -> str:
    lines = [
        "# Firewall benchmark: Purple vs llamafirewall 1.0.3 (the anchor), same run",
        "",
        f"Machine: {report['machine']}. Command: `{report['command']}`.",
        "",
        f"Load average (1 min) when the run started and ended: {report['load_average'][0]:.1f} and "
        f"{report['load_average'][1]:.1f}: the machine is shared with other work, so absolute times move between runs; "
        "the ratios come from calls interleaved in one run.",
        "",
    ]
    latency = report.get("latency")
    if latency:
        lines += [
            "## Added latency per message, one call per message",
            "",
            f"{report['messages']} user messages of exactly {TOKENS} tokens ({report['token_note']}) and "
            f"{report['code_messages']} assistant messages with a CyberSecEval instruct snippet in a fenced block; "
            "calls alternate between the anchor and ours; 3 warm-up calls not counted.",
            "",
            "| messages | anchor scanners | anchor p50 / p99 | ours | ours p50 / p99 | p50 ratio | p99 ratio |",
            "|---|---|---|---|---|---:|---:|",
        ]
        for row in latency:
            a, o = row["anchor"], row["ours"]
            scanners = " + ".join(s.upper() for s in row["anchor_scanners"])
            if row["anchor_reused"]:
                scanners += " (scanner built once)"
            lines.append(
                f"| {row['row']} | {scanners} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms | {OURS[row['ours_config']]} | "
                f"{o['p50_ms']:.2f} / {o['p99_ms']:.2f} ms | {a['p50_ms'] / o['p50_ms']:.0f}x | "
                f"{a['p99_ms'] / o['p99_ms']:.0f}x |"
            )
        lines += ["", *report["latency_notes"], ""]
    load_result = report.get("load")
    if load_result:
        d = load_result["direct"]
        lines += [
            f"## The proxy under {report['clients']} concurrent clients for {report['load_seconds']:g} s on 127.0.0.1",
            "",
            "Same load every time: 256-token benign user prompts (benign_prompts_large, joined and cut like the ones "
            "above), 1 request in 5 streamed, a canned upstream (no model work). Errors are transport failures, 5xx answers and broken streams; blocks are firewall decisions.",
            "",
            "| target | requests | req/s | p50 | p99 | errors | blocked (by the budget) | audit entries lost |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| upstream directly | {d['requests']:,} | {d['rps']:.0f} | {d['p50_ms']:.1f} ms | {d['p99_ms']:.1f} ms | "
            f"{d['errors']} | - | - |",
        ]
        for p in load_result["proxy"]:
            lines.append(
                f"| `purple serve`, {p['label']} | {p['requests']:,} | {p['rps']:.1f} | {p['p50_ms']:.1f} ms | "
                f"{p['p99_ms']:.1f} ms | {p['errors']} | {p['blocked']} ({p['budget_blocks']}) | "
                f"{p['lost_audit_entries']} of {2 * p['ok']:,} |"
            )
        first = load_result["proxy"][0]
        keys = any(p["api_key_in_log"] for p in load_result["proxy"])
        exits = sorted({p["proxy_exit"] for p in load_result["proxy"]})
        lost = sum(p["lost_audit_entries"] for p in load_result["proxy"])
        expected = sum(2 * p["ok"] for p in load_result["proxy"])
        audit = (
            f"All {expected:,} input and final output decisions of the answered requests were in the audit logs"
            if lost == 0
            else f"{lost:,} of {expected:,} input and final output decisions of answered requests are MISSING from "
            "the audit logs"
        )
        lines += [
            "",
            f"Without the injection model the proxy carries {first['rps'] / d['rps']:.0%} of the upstream's own request "
            f"rate. {audit} (each record is fsynced before the answer that depends on it goes out). The client's key "
            f"in the audit log or the proxy's output: {'yes' if keys else 'no'}; proxy exit code after SIGTERM: "
            f"{', '.join(map(str, exits))}.",
            "",
            *report["load_notes"],
            "",
        ]
    return "\n".join(lines)


OURS = {
    "default": "chatbot preset: injection (shipped model) + hidden_unicode + secrets",
    "model": "the shipped injection model alone (`detector.check`), for reference",
    "pg2": "same PG2-shaped model + hidden_unicode + secrets",
    "rules": "hidden_unicode + secrets + pii",
    "code": "code_shield (regex tier) + hidden_unicode + secrets + pii",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--code-messages", type=int, default=200)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 0 < args.load_seconds <= 300:
        parser.error(
            "--clients must be 1-200 and --load-seconds at most 300 (the load stays small and bounded)"
        )
    try:
        benign, injections = read_texts(args.datasets, seed=0)
    except FileNotFoundError as exc:
        print(f"firewall benchmark: dataset not found: {exc.filename} (use --datasets)", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    started_load = os.getloadavg()[0]
    shipped, missing = shipped_detector()
    if shipped is not None:
        shipped.encoder.cache_size = 0  # time real work: no message's vectors are reused between calls
    python = ensure_anchor()
    ensure_pg2_model(python, benign + injections)
    from tokenizers import Tokenizer

    pg2_tokenizer = Tokenizer.from_file(str(PG2_DIR / "tokenizer.json"))
    if shipped is not None:
        tokenizer = Tokenizer.from_file(str(shipped.encoder.folder / "tokenizer.json"))
        token_note = "counted by the shipped injection model's tokenizer"
    else:
        tokenizer = pg2_tokenizer
        token_note = "counted by the PG2-shaped model's tokenizer"
    mixed = benign + injections
    random.Random(0).shuffle(mixed)
    users = cut_messages(mixed, tokenizer, args.messages)
    benign_users = cut_messages(
        benign, tokenizer, args.messages
    )  # the load test's prompts: answered, not blocked
    report: dict[str, Any] = {
        "command": "python benchmarks/perf/firewall.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU, Python {platform.python_version()}",
        "messages": len(users),
        "code_messages": args.code_messages,
        "token_note": token_note,
        "clients": args.clients,
        "load_seconds": args.load_seconds,
    }
    if not args.skip_latency:
        print("latency per message:", file=sys.stderr)
        anchor = Anchor(python)
        try:
            report["latency"] = measure_latency(
                anchor, users, code_messages(args.datasets, args.code_messages), shipped
            )
        finally:
            anchor.close()
        mean_pg2 = sum(len(pg2_tokenizer.encode(u, add_special_tokens=False).ids) for u in users) / len(users)
        report["latency_notes"] = [
            "- The anchor's Prompt Guard is a Prompt-Guard-2-86M-shaped classifier with random weights (mDeBERTa-v3-base "
            "shape: 12 layers, hidden 768, 251k-entry embeddings) saved where its scanner looks; the real weights need "
            "the hub. Ours loads the same folder through `purple.promptguard.PromptGuard`, so that row compares the "
            f"pipelines on one model (the messages average {mean_pg2:.0f} tokens in its tokenizer).",
            "- `LlamaFirewall.scan` builds its scanners on every call, which for Prompt Guard means loading the model "
            "each time; the last row times the anchor's scanner built once, to show how much of its time that is.",
            "- Both processes run with OMP_WAIT_POLICY=PASSIVE: calls alternate between them on 2 cores, and a side's "
            "idle OpenMP threads would otherwise spin on the cores the other side is being timed on (torch: the "
            "anchor and our PG2-shaped rows). The shipped model runs in onnxruntime, whose worker thread spins briefly "
            "around each call and then sleeps. Our detectors' vector cache is off, so every message is encoded afresh.",
            "- The anchor's REGEX scanner blocks any email, phone or card-shaped number, and its CODE_SHIELD scanner "
            "scans every snippet as all 8 of its languages; ours reads the fence's language and checks cards with Luhn.",
            "- Ours with the chatbot preset"
            + (
                ": the shipped model is present."
                if shipped is not None
                else f" was not measured: the shipped injection model is not available here ({missing})."
            ),
        ]
    if not args.skip_load:
        print("proxy under load:", file=sys.stderr)
        report["load"] = measure_load(args.load_seconds, args.clients, benign_users, shipped is not None)
        report["load_notes"] = [
            "- The load generator (Python, httpx), the proxy and the upstream share this machine's 2 cores, so every "
            "row is bounded by it; compare rows, not absolute rates.",
            "- The chatbot without the injection model: hidden Unicode and secrets on user messages; Code Shield "
            "(regex tier), hidden Unicode, secrets and PII on answers.",
            "- With the injection model every request runs a transformer over 256 tokens on the same 2 cores; the "
            "proxy batches concurrent requests into one model call. Past the model's rate, requests queue: under the "
            "preset's 1 s budget a scan that waits longer fails closed (counted as blocked by the budget); with a "
            "30 s budget the same queueing shows as latency.",
        ]
        if shipped is None:
            report["load_notes"].append(
                "- The shipped injection model is not available here, so only the run without it was made."
            )
    report["load_average"] = [started_load, os.getloadavg()[0]]
    text = render(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "firewall.md").write_text(text, encoding="utf-8")
    (args.out / "firewall.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
