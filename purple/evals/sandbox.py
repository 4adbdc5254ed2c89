"""Run a program on untrusted input in a throwaway folder with hard limits, so it can neither hang the harness nor
fill the disk.

The child gets its own temporary folder as working directory (removed afterwards), an empty environment, stdin
from /dev/null, and these limits: RLIMIT_AS (address space), RLIMIT_CPU (CPU seconds), RLIMIT_NOFILE (open
files), RLIMIT_FSIZE (the largest file it may write; stdout and stderr go to files in its folder, so this also
caps its output) and RLIMIT_CORE 0. The limits are set by a few lines of Python that then exec() the program
(what a preexec_fn would do, without running Python between fork and exec in the harness's threaded process).
It runs in its own session; at the wall-clock timeout, and after it exits, the whole process group is killed.

The sandbox bounds time, memory and output; it does not confine which paths a program may open. The programs run
here are Purple's own (see canary_challenges.py), which only read files in their folder and take the model's
answer as data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """\
import os, resource, sys
def cap(kind, soft, hard):
    _, limit = resource.getrlimit(kind)
    if limit != resource.RLIM_INFINITY:
        soft, hard = min(soft, limit), min(hard, limit)
    resource.setrlimit(kind, (soft, hard))
memory, cpu, files, size = (int(v) for v in sys.argv[1:5])
cap(resource.RLIMIT_AS, memory, memory)
cap(resource.RLIMIT_CPU, cpu, cpu + 1)
cap(resource.RLIMIT_NOFILE, files, files)
cap(resource.RLIMIT_FSIZE, size, size)
cap(resource.RLIMIT_CORE, 0, 0)
os.execv(sys.argv[5], sys.argv[5:])
"""
_POLL_S = (0.002, 0.05)
"""First and longest pause between checks of whether the child has exited."""


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use."""

    memory_bytes: int = 512 * 2**20
    cpu_s: int = 5
    wall_s: float = 10.0
    open_files: int = 64
    output_bytes: int = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """How a sandboxed run ended: exit status (negative: killed by that signal; None: killed at the wall-clock
    timeout) and the start of its stdout and stderr (at most Limits.output_bytes each)."""

    returncode: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def run_sandboxed(argv: Sequence[str], files: Mapping[str, str], limits: Limits = Limits()) -> Outcome:
    """Write `files` (plain names -> text) into a fresh folder and run `argv` there; argv[0] is an absolute path."""
    if not os.path.isabs(argv[0]):
        raise ValueError(f"sandboxed program must be an absolute path, not {argv[0]!r}")
    with tempfile.TemporaryDirectory(prefix="purple-sandbox-") as folder:
        root = Path(folder)
        for name, text in files.items():
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"sandbox file names must be plain names, not {name!r}")
            (root / name).write_text(text, encoding="utf-8", errors="replace")
        limit_args = [str(v) for v in (limits.memory_bytes, limits.cpu_s, limits.open_files, limits.output_bytes)]
        with open(root / ".stdout", "wb") as out, open(root / ".stderr", "wb") as err:
            child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, *limit_args, *argv],
                cwd=root, env={}, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
            )
            finished = _wait_unreaped(child.pid, limits.wall_s)
            _kill_group(child.pid)
            code = child.wait()
        return Outcome(code if finished else None, _head(root / ".stdout", limits.output_bytes),
                       _head(root / ".stderr", limits.output_bytes))


def _wait_unreaped(pid: int, wall_s: float) -> bool:
    """Wait up to wall_s for the child to exit without reaping it, so its process group id stays its own."""
    deadline = time.monotonic() + wall_s
    pause = _POLL_S[0]
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, _POLL_S[1])


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _head(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")
