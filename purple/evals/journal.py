"""A crash-safe JSONL journal of judged records.

Each batch of records is appended with one write and fsynced. A run killed mid-write leaves at most one torn
last line; opening the journal again cuts it off, and reading keeps the last record of each key, so a resumed
run neither loses nor duplicates records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record, one per key (the last written wins), in first-seen order."""
    records: dict[str, dict[str, Any]] = {}
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a torn last line from a killed run, or a line nested too deeply to read
        if isinstance(record, dict) and isinstance(record.get("key"), str):
            records[record["key"]] = record
    return list(records.values())


class Journal:
    """Append-only writer. Use as a context manager or call close()."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _repair(self) -> None:
        """Cut a torn last line (no trailing newline) left by a killed writer."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                handle.flush()
                os.fsync(handle.fileno())

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        payload = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        view = memoryview(payload)
        while view:
            view = view[os.write(self._fd, view) :]
        if payload:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
