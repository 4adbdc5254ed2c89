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


def test_a_failing_write_is_reported_until_one_succeeds_and_the_gap_is_recorded(tmp_path: Path) -> None:
    """The log's path is a symlink: pointed at /dev/full the disk is full (ENOSPC), pointed back it has room."""
    real, path = tmp_path / "real.jsonl", tmp_path / "audit.jsonl"
    path.symlink_to(real)

    def point_at(target: Path) -> None:
        (tmp_path / "next").symlink_to(target)
        (tmp_path / "next").replace(path)

    with AuditLog(path) as log:
        log.write({"n": 1})
        assert log.failure is None
        point_at(Path("/dev/full"))
        for n in (2, 3):
            with pytest.raises(OSError, match="No space left"):
                log.write({"n": n})
        failure = log.failure
        assert failure is not None and failure.error == "No space left on device"
        assert failure.lost_records == 2 and str(tmp_path) not in failure.error
        point_at(real)
        log.write({"n": 4})
        assert log.failure is None
    records = list(read_records(real))
    assert [r.get("n") for r in records] == [1, None, 4]
    assert records[1]["stage"] == "audit_gap" and records[1]["lost_records"] == 2
    assert records[1]["since"] == failure.since


def test_a_log_file_replaced_after_start_is_reopened_or_fails(tmp_path: Path) -> None:
    """Rotated away: the next record goes to a new file at the path. A folder in its place: writes fail, loudly."""
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.write({"n": 1})
        path.rename(tmp_path / "rotated.jsonl")
        log.write({"n": 2})
        path.rename(tmp_path / "rotated-2.jsonl")
        path.mkdir()
        with pytest.raises(IsADirectoryError):
            log.write({"n": 3})
        assert log.failure is not None and log.failure.error == "Is a directory"
        path.rmdir()
        log.write({"n": 4})
        assert log.failure is None
    assert [r["n"] for r in read_records(tmp_path / "rotated.jsonl")] == [1]
    assert [r["n"] for r in read_records(tmp_path / "rotated-2.jsonl")] == [2]
    assert [r.get("n") or r["stage"] for r in read_records(path)] == ["audit_gap", 4]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_retry_recovers_a_failed_log_without_a_record_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        path.unlink()
        path.mkdir()
        with pytest.raises(OSError):
            log.write({"n": 1})
        with pytest.raises(OSError):
            asyncio.run(log.aretry())
        assert log.failure is not None and log.failure.lost_records == 1
        path.rmdir()
        asyncio.run(log.aretry())
        assert log.failure is None and log.records == 0
    assert [r["stage"] for r in read_records(path)] == ["audit_gap"]
