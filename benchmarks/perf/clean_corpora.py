"""Clean code present on every machine of this kind, for counting false findings per 1,000 lines.

    python benchmarks/perf/clean_corpora.py [--language python] [--limit-files 400] [--show 20] [--no-semgrep]

Corpora: the running Python's standard library, C sources and headers shipped by installed packages
(/usr/include and .c files under /usr/share/doc and site-packages), the JDK's src.zip, and npm's own
JavaScript. Each is sampled deterministically (every k-th file) up to --limit-files.
"""

from __future__ import annotations

import argparse
import collections
import sys
import sysconfig
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MAX_FILE_BYTES = 400_000


@dataclass(frozen=True)
class CleanFile:
    name: str
    language: str
    code: str

    @property
    def lines(self) -> int:
        return self.code.count("\n") + 1


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _stride(paths: list[Path], limit: int) -> list[Path]:
    paths = sorted(paths)
    if len(paths) <= limit:
        return paths
    step = len(paths) / limit
    return [paths[int(i * step)] for i in range(limit)]


def _files(
    roots: Sequence[Path], suffixes: set[str], language: str, limit: int, skip: tuple[str, ...] = ()
) -> Iterator[CleanFile]:
    found = [
        p
        for root in roots
        if root.is_dir()
        for p in root.rglob("*")
        if p.suffix in suffixes and p.is_file() and not any(part in skip for part in p.parts)
    ]
    for path in _stride(found, limit):
        code = _read(path)
        if code:
            yield CleanFile(str(path), language, code)


def _java_from_zip(limit: int) -> Iterator[CleanFile]:
    zips = sorted(Path("/usr/lib/jvm").glob("*/lib/src.zip"))
    if not zips:
        return
    with zipfile.ZipFile(zips[0]) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".java") and n.startswith("java.base/"))
        step = max(1, len(names) // limit)
        for name in names[::step][:limit]:
            info = archive.getinfo(name)
            if info.file_size > MAX_FILE_BYTES:
                continue
            yield CleanFile(f"{zips[0]}!{name}", "java", archive.read(name).decode("utf-8", "replace"))


def corpus(language: str, limit: int) -> list[CleanFile]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if language == "python":
        skip = ("test", "tests", "idle_test", "site-packages", "lib2to3")
        return list(_files([stdlib], {".py"}, "python", limit, skip))
    if language == "c":
        roots = [Path("/usr/include"), Path("/usr/share/doc"), Path(sysconfig.get_paths()["purelib"])]
        return list(_files(roots, {".c", ".h"}, "c", limit))
    if language == "java":
        return list(_java_from_zip(limit))
    if language == "javascript":
        return list(_files([Path("/usr/lib/node_modules/npm/lib")], {".js"}, "javascript", limit))
    raise ValueError(f"no clean corpus for {language}")


CORPUS_LANGUAGES = ("python", "c", "java", "javascript")


def main(argv: Sequence[str] | None = None) -> int:
    from purple.codeshield import CodeItem, CodeShield

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", choices=CORPUS_LANGUAGES)
    parser.add_argument("--limit-files", type=int, default=400)
    parser.add_argument("--show", type=int, default=20)
    parser.add_argument("--no-semgrep", action="store_true")
    args = parser.parse_args(argv)
    shield = CodeShield(semgrep=not args.no_semgrep)
    for language in [args.language] if args.language else CORPUS_LANGUAGES:
        files = corpus(language, args.limit_files)
        results = shield.scan_many([CodeItem(f.code, f.language, f.name) for f in files])
        lines = sum(f.lines for f in files)
        findings = [finding for result in results for finding in result.findings]
        per_rule = collections.Counter(f.rule_id for f in findings)
        print(f"{language}: {len(files)} files, {lines} lines, {len(findings)} findings, "
              f"{1000 * len(findings) / max(lines, 1):.3f} per 1,000 lines")
        for rule_id, count in per_rule.most_common(15):
            print(f"    {count:5}  {rule_id}")
        for finding in findings[: args.show]:
            print(f"    {finding.rule_id} {Path(finding.path or '').name}:{finding.line}: {finding.snippet[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
