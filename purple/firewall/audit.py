"""An append-only JSONL audit log that survives a crash.

Every record is on disk (written, flushed and fsynced) before `write` returns. Records written at the same time
by many threads or requests share one write and one fsync (group commit): a writer thread takes everything that
is queued, appends it with one `write`, fsyncs, and only then releases the callers. No caller is told its record
is stored before it is, so a crash loses no acknowledged record.

A crash in the middle of a write can leave a partial last line. Opening the log again ends such a line with a
newline, so every later record starts on its own line; readers skip lines that are not JSON (`read_records`).

A write that fails (a full disk, an I/O error) fails its callers and is kept in `failure` (a short reason, since when,
how many records were lost) until a write succeeds again; that write is preceded by an `audit_gap` record saying
what was lost. Before each write the log checks that its path still names the file it holds open: when the file was
moved, deleted or replaced (log rotation, or a folder put in its place), it opens the path again, and when that is
impossible the write fails, rather than records going to a file nobody can find.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_RECORD_BYTES = 1_000_000
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT


@dataclass(frozen=True)
class AuditFailure:
    """The log cannot be written: why (the system's reason, no path), since when, and how many records were lost."""

    error: str
    since: str
    lost_records: int


class AuditLog:
    """Append JSON records to `path`, one per line, durably. Thread-safe; `awrite` for async code."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        existed = self.path.exists()
        self._fd = os.open(self.path, _FLAGS, 0o600)
        try:
            self._end_partial_line()
            if not existed:
                _fsync_dir(self.path.parent)
        except OSError:
            os.close(self._fd)
            raise
        self._queue: list[tuple[bytes, Future[None]]] = []
        self._cond = threading.Condition()
        self._closed = False
        self.records = 0
        self.commits = 0
        self.failure: AuditFailure | None = None
        """Set when the last write failed; None once a write succeeds (read it from any thread)."""
        self._torn = False  # a failed write may have left part of a line
        self._thread = threading.Thread(target=self._run, name="purple-audit", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r})"

    def submit(self, record: Mapping[str, Any]) -> Future[None]:
        """Queue `record` (a `time` field is added when missing); the future completes once it is on disk."""
        data = {"time": _now(), **record}
        line = (json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        if len(line) > MAX_RECORD_BYTES:
            raise ValueError(f"audit record larger than {MAX_RECORD_BYTES:,} bytes")
        return self._enqueue(line)

    async def aretry(self) -> None:
        """While writes fail, try again with no record of its own (a successful try writes the `audit_gap` record
        and clears `failure`), so a log with no traffic can recover; OSError when it still cannot be written."""
        await asyncio.wrap_future(self._enqueue(b""))

    def _enqueue(self, line: bytes) -> Future[None]:
        future: Future[None] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the audit log is closed")
            self._queue.append((line, future))
            self._cond.notify()
        return future

    def write(self, record: Mapping[str, Any]) -> None:
        """Append `record` and return once it is on disk; OSError if it could not be stored."""
        self.submit(record).result()

    async def awrite(self, record: Mapping[str, Any]) -> None:
        await asyncio.wrap_future(self.submit(record))

    def close(self) -> None:
        """Store what is queued, then close the file."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify()
        self._thread.join()
        os.close(self._fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            try:
                self._reopen_if_replaced()
                if self._torn:
                    self._end_partial_line()
                    self._torn = False
                _write_all(self._fd, self._gap_line() + b"".join(line for line, _ in batch))
                os.fsync(self._fd)
            except OSError as exc:
                self._torn = True
                failure = self.failure
                lost = sum(1 for line, _ in batch if line)  # a retry (an empty line) loses no record
                self.failure = AuditFailure(
                    error=exc.strerror or type(exc).__name__,
                    since=failure.since if failure else _now(),
                    lost_records=(failure.lost_records if failure else 0) + lost,
                )
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.failure = None
            self.records += sum(1 for line, _ in batch if line)
            self.commits += 1
            for _, future in batch:
                future.set_result(None)

    def _gap_line(self) -> bytes:
        """The record that says what was lost while writes failed (empty when nothing failed)."""
        failure = self.failure
        if failure is None:
            return b""
        record = {
            "time": _now(),
            "stage": "audit_gap",
            "error": failure.error,
            "since": failure.since,
            "lost_records": failure.lost_records,
        }
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()

    def _reopen_if_replaced(self) -> None:
        """Open the path again when it no longer names the open file; OSError when that cannot be done."""
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            named = None
        held = os.fstat(self._fd)
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return
        fd = os.open(self.path, _FLAGS, 0o600)
        os.close(self._fd)
        self._fd = fd
        self._end_partial_line()
        if named is None:
            _fsync_dir(self.path.parent)

    def _end_partial_line(self) -> None:
        size = os.fstat(self._fd).st_size
        if not size:
            return
        with self.path.open("rb") as handle:
            handle.seek(size - 1)
            last = handle.read(1)
        if last != b"\n":
            _write_all(self._fd, b"\n")
            os.fsync(self._fd)


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """The log's records, skipping blank lines and a line cut short by a crash."""
    with Path(path).open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable too (where the platform allows opening a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
