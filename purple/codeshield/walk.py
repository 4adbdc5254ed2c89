"""Find and read the files to scan: walk trees honouring .gitignore, skip binaries and oversized files."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pathspec

from purple.codeshield.languages import language_from_path

DEFAULT_MAX_BYTES = 2_000_000
_BINARY_PROBE_BYTES = 8192
_ALWAYS_SKIPPED_DIRS = {".git", ".hg", ".svn"}


@dataclass(frozen=True)
class SourceFile:
    path: str
    """As shown to the user (relative to the working directory when possible)."""
    text: str
    language: str | None
    note: str | None = None


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    error: bool
    """True when the user named this path explicitly (a failure), False for files met while walking."""


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def read_source(path: Path, max_bytes: int, explicit: bool, language: str | None = None) -> SourceFile | Skipped:
    """Read one file as text; binary or oversized files are skipped, invalid UTF-8 is replaced and noted."""
    shown = _display(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Skipped(shown, f"larger than the {max_bytes:,}-byte limit ({size:,} bytes); not scanned", explicit)
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return Skipped(shown, f"cannot read: {exc.strerror or exc}", True)
    if b"\x00" in data[:_BINARY_PROBE_BYTES]:
        return Skipped(shown, "binary file; not scanned", explicit)
    note = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        note = f"not valid UTF-8 (first bad byte at offset {exc.start}); scanned with replacement characters"
    return SourceFile(shown, text, language or language_from_path(path), note)


class _IgnoreRules:
    """The .gitignore files met on the way down, each applying to paths below its folder."""

    def __init__(self) -> None:
        self._specs: list[tuple[Path, pathspec.PathSpec]] = []

    def add_folder(self, folder: Path) -> None:
        ignore_file = folder / ".gitignore"
        if ignore_file.is_file():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                return
            self._specs.append((folder, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, path: Path, is_dir: bool) -> bool:
        for base, spec in self._specs:
            try:
                relative = path.relative_to(base).as_posix()
            except ValueError:
                continue
            if spec.match_file(relative + "/" if is_dir else relative):
                return True
        return False


def _walk(root: Path, max_bytes: int, language: str | None) -> Iterator[SourceFile | Skipped]:
    ignore = _IgnoreRules()
    resolved = root.resolve()
    ancestors = list(resolved.parents)
    repo_root = next((p for p in ancestors if (p / ".git").exists()), None)
    if repo_root is not None:
        # Honour the .gitignore files of the enclosing repository above the scanned folder too.
        for folder in reversed(ancestors[: ancestors.index(repo_root) + 1]):
            ignore.add_folder(folder)
    for folder, dirnames, filenames in os.walk(resolved):
        current = Path(folder)
        ignore.add_folder(current)
        dirnames[:] = sorted(
            d for d in dirnames if d not in _ALWAYS_SKIPPED_DIRS and not ignore.ignored(current / d, is_dir=True)
        )
        for name in sorted(filenames):
            path = current / name
            if ignore.ignored(path, is_dir=False) or path.is_symlink():
                continue
            file_language = language or language_from_path(path)
            if file_language is None:
                continue
            if not path.is_file():  # a FIFO, socket or device: reading it could block forever
                yield Skipped(_display(path), "not a regular file; not scanned", False)
                continue
            yield read_source(path, max_bytes, explicit=False, language=file_language)


def iter_sources(
    paths: Sequence[str | Path], max_bytes: int = DEFAULT_MAX_BYTES, language: str | None = None
) -> Iterator[SourceFile | Skipped]:
    """Files to scan under `paths`; a named file is always read, a folder is walked for known languages."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path, max_bytes, language)
        elif path.is_file():
            yield read_source(path, max_bytes, explicit=True, language=language)
        elif path.exists():
            yield Skipped(_display(path), "not a regular file; not scanned", True)
        else:
            yield Skipped(str(raw), "no such file or directory", True)
