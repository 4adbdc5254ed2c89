"""The audit log: durable appends, group commit under concurrency, recovery after a torn last line."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from purple.firewall.audit import AuditLog, read_records


def test_concurrent_writers_lose_nothing_and_share_commits(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:

        def writer(n: int) -> None:
            for i in range(50):
                log.write({"writer": n, "i": i})

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        futures = [log.submit({"batch": i}) for i in range(100)]
        for future in futures:
            future.result()

        async def from_async() -> None:
            await asyncio.gather(*(log.awrite({"task": i}) for i in range(20)))

        asyncio.run(from_async())
        assert log.records == 520 and log.commits < 520
    records = list(read_records(path))
    assert len(records) == 520 and all("time" in r for r in records)
    assert sorted((r["writer"], r["i"]) for r in records if "writer" in r) == [
        (n, i) for n in range(8) for i in range(50)
    ]
    assert [r["batch"] for r in records if "batch" in r] == list(range(100))  # one writer's order is kept
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_torn_last_line_is_closed_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"stage": "input", "ok": true}\n{"stage": "outp')  # a crash in the middle of a write
    with AuditLog(path) as log:
        log.write({"stage": "input", "after": "restart"})
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"stage": "outp' and json.loads(lines[2])["after"] == "restart"
    assert [r.get("ok") or r.get("after") for r in read_records(path)] == [True, "restart"]


def test_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        AuditLog(tmp_path)  # a folder
    log = AuditLog(tmp_path / "a.jsonl")
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.write({"x": 1})
    with AuditLog(tmp_path / "b.jsonl") as big, pytest.raises(ValueError, match="larger than"):
        big.write({"x": "y" * 1_000_001})
