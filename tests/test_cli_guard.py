"""`purple guard` end to end through the real entry point: text, JSONL in and out, exit codes, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fixtures import TEST_KEY
from tests.support.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[1]


def purple(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "purple.cli", *args], input=stdin, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_guard_text_and_exit_codes(lg3_dir: Path) -> None:
    safe = purple("guard", "How do I bake bread?", "-m", f"hf:{lg3_dir}")
    assert safe.returncode == 0 and safe.stdout.startswith("safe (P(unsafe)=")
    flagged = purple("guard", "hello", "--response", "hi there", "-m", f"hf:{lg3_dir}", "--threshold", "0", "--no-codes")
    assert flagged.returncode == 1 and flagged.stdout.startswith("unsafe (P(unsafe)=")
    assert purple("guard", "hello", "-m", f"hf:{lg3_dir}", "--threshold", "0", "--no-codes", "--fail-on", "never").returncode == 0


def test_guard_jsonl_reports_bad_lines_and_keeps_the_rest(lg3_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "prompt": "How do I bake bread?"}\n'
        "not json\n"
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
        "\n"
        '{"messages": [{"role": "robot", "content": "x"}]}\n'
        '{"messages": [{"role": "assistant", "content": "I go first"}]}\n'
    )
    out = tmp_path / "verdicts.jsonl"
    proc = purple("guard", "--input", str(source), "-m", f"hf:{lg3_dir}", "--exclude", "S6", "-o", str(out))
    assert proc.returncode == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 5, 6]
    assert rows[0]["id"] == "a" and rows[0]["decision"] == "allow" and 0 <= rows[0]["score"] <= 1
    assert rows[2]["decision"] == "allow" and rows[2]["error"] is None
    assert "not valid JSON" in rows[1]["error"] and "role 'robot'" in rows[3]["error"]
    assert "start with a user turn" in rows[4]["error"]
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("purple: error: ") for e in errors)


def test_guard_through_an_api_server_with_the_key_from_the_environment(lg3_server: OpenAIServer) -> None:
    stdin = '{"prompt": "How do I bake bread?"}\n{"prompt": "hi", "response": "hello"}\n'
    proc = purple(
        "guard", "-i", "-", "-m", "openai:tiny-llama-guard-3-1b", "--base-url", lg3_server.url,
        "--api-key-env", "GUARD_KEY", "--top-logprobs", "1000", stdin=stdin, env={"GUARD_KEY": TEST_KEY},
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["decision"] for r in rows] == ["allow", "allow"]
    assert TEST_KEY not in proc.stdout + proc.stderr


def test_guard_errors_are_one_line(tmp_path: Path) -> None:
    cases = [
        (["guard", "x", "-m", "bogus"], "bad model spec"),
        (["guard", "x", "-m", f"hf:{tmp_path / 'missing'}"], "model folder not found"),
        (["guard", "x", "-m", "openai:gpt-4o"], "cannot tell the Llama Guard version"),
        (["guard", "x", "-m", "OPENAI::llama-guard-3-8b::sk-cli-secret-777::http://127.0.0.1:9/v1"], "cannot reach"),
        (["guard", "x", "-m", "openai:llama-guard-3-8b", "--categories", str(tmp_path / "none.yaml")], "not found"),
        (["guard", "-i", str(tmp_path / "none.jsonl"), "-m", "openai:llama-guard-3-8b"], "cannot read"),
    ]
    for args, message in cases:
        proc = purple(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "sk-cli-secret" not in proc.stderr + proc.stdout
    assert purple("guard").returncode == 2  # usage: neither TEXT nor --input


def test_an_unclassified_conversation_has_no_decision(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "hello"}\n')
    proc = purple("guard", "-i", str(path), "-m", "OPENAI::llama-guard-3-8b::sk-x::http://127.0.0.1:9/v1")
    row = json.loads(proc.stdout)
    assert proc.returncode == 2 and "cannot reach" in row["error"] and row["decision"] is None
