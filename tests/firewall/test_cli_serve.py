"""`purple serve` as a real process: start, answer through the OpenAI client, stop cleanly, survive a kill with
its audit log intact, and refuse bad settings with one line and exit code 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from purple.firewall.audit import read_records
from tests.firewall.support import StreamingServer
from tests.support.fixtures import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
name: cli-test
detectors:
  words:
    use: regex
    patterns:
      - {name: evil, pattern: '(?i)\\bevil\\b'}
roles:
  user: [hidden_unicode, secrets, words]
  assistant: [hidden_unicode, secrets]
"""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "purple.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@contextmanager
def serving(upstream: str, tmp_path: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    process = subprocess.Popen(
        _command(
            "serve",
            "--upstream",
            upstream,
            "--policy",
            str(policy),
            "--port",
            "0",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            *extra,
        ),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "purple: serving http://127.0.0.1:" in line, line
        url = line.split("serving ", 1)[1].split(" ", 1)[0]
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_answers_and_stops_cleanly(upstream: StreamingServer, tmp_path: Path) -> None:
    with serving(upstream.url, tmp_path) as (process, url):
        client = openai.OpenAI(base_url=url, api_key=TEST_KEY, max_retries=0)
        answer = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        assert answer.choices[0].message.content == upstream.reply(
            [{"role": "user", "content": "hi"}], max_tokens=8
        )
        with pytest.raises(openai.BadRequestError, match="words: evil at line 1"):
            client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "an evil plan"}]
            )
        wrong = openai.OpenAI(base_url=url, api_key="sk-not-the-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "Traceback" not in err and TEST_KEY not in err + out
    log = (tmp_path / "audit.jsonl").read_text()
    assert TEST_KEY not in log and "sk-not-the-key" not in log
    assert [r["stage"] for r in read_records(tmp_path / "audit.jsonl")] == [
        "input",
        "output",
        "input",
        "input",
        "upstream_error",
    ]


@pytest.mark.parametrize("scan_history", [False, True])
def test_serve_scan_history_flag(upstream: StreamingServer, tmp_path: Path, scan_history: bool) -> None:
    """--scan-history: an earlier turn that the app forwards (which its user could have written) is scanned too."""
    history = [{"role": "user", "content": "an evil plan"}, {"role": "assistant", "content": "no"},
               {"role": "user", "content": "hi"}]
    extra = ("--scan-history",) if scan_history else ()
    with serving(upstream.url, tmp_path, *extra) as (process, url):
        client = openai.OpenAI(base_url=url, api_key=TEST_KEY, max_retries=0)
        if scan_history:
            with pytest.raises(openai.BadRequestError, match="words: evil"):
                client.chat.completions.create(model="tiny", messages=history, max_tokens=4)
        else:
            assert client.chat.completions.create(model="tiny", messages=history, max_tokens=4).choices
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_audit_log_survives_a_kill(upstream: StreamingServer, tmp_path: Path) -> None:
    with serving(upstream.url, tmp_path) as (process, url):
        client = openai.OpenAI(base_url=url, api_key=TEST_KEY, max_retries=0)
        ids = []
        for i in range(6):
            response = client.chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": f"question {i}"}], max_tokens=4
            )
            ids.append(response.headers["x-purple-request-id"])
        process.send_signal(signal.SIGKILL)
        process.wait()
    records = list(read_records(tmp_path / "audit.jsonl"))
    for request_id in ids:  # every answered request has both its decisions on disk
        assert [r["stage"] for r in records if r["request_id"] == request_id] == ["input", "output"]


def test_bad_settings_are_one_line_and_exit_2(upstream: StreamingServer, tmp_path: Path) -> None:
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("roles:\n  user: [injection]\n  assistant: [llama_guard]\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = str(busy.getsockname()[1])
    cases = [
        (["--upstream", "localhost:8000"], "bad upstream URL 'localhost:8000'"),
        (["--upstream", "http://user:secret@127.0.0.1:8000/v1"], "must not carry credentials"),
        (
            ["--upstream", upstream.url, "--policy", str(tmp_path / "nope.yaml")],
            "nope.yaml: no such policy file",
        ),
        (["--upstream", upstream.url, "--policy", str(bad_policy)], "cannot be built"),
        (
            [
                "--upstream",
                upstream.url,
                "--audit-log",
                str(tmp_path / "no" / "such" / "a.jsonl"),
                "--policy",
                str(tmp_path / "ok.yaml"),
            ],
            "cannot open the audit log",
        ),
        (
            [
                "--upstream",
                upstream.url,
                "--port",
                port,
                "--audit-log",
                str(tmp_path / "a.jsonl"),
                "--policy",
                str(tmp_path / "ok.yaml"),
            ],
            f"cannot listen on 127.0.0.1:{port}",
        ),
    ]
    (tmp_path / "ok.yaml").write_text(POLICY)
    try:
        for args, message in cases:
            started = time.monotonic()
            proc = subprocess.run(
                _command("serve", *args), capture_output=True, text=True, env=_env(), timeout=60
            )
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode == 2, proc.stderr
            assert (
                len(lines) == 1 and lines[0].startswith("purple: error: ") and "Traceback" not in proc.stderr
            )
            assert message in lines[0], lines[0]
            assert time.monotonic() - started < 60
    finally:
        busy.close()
