from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from ._errors import HostCause, HostFailure, ProcessFailed, ProcessTimeout

log = structlog.get_logger("mediaplane.media")

_PR_SET_PDEATHSIG = 1
_libc_name = ctypes.util.find_library("c")
_libc = ctypes.CDLL(_libc_name, use_errno=True) if _libc_name else None
#: stderr lines kept (and logged when the process fails).
STDERR_LINES = 40
#: Lines of that tail that go into the failure log line.
LOGGED_STDERR_LINES = 12


def _child_env() -> dict[str, str]:
    """The environment with C-locale messages: errno texts on stderr are then the ones
    :func:`._errors.classify` matches, whatever the host's language."""
    env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}
    env["LC_MESSAGES"] = "C"
    return env


def _limit_child(memory_bytes: int, nice: int = 0) -> None:
    # Runs in the child between fork and exec: only async-signal-safe-ish C calls.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if nice:
        os.nice(nice)
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass(frozen=True)
class ChildOptions:
    """What every media subprocess starts with, for one that cannot be a
    :class:`ManagedProcess` (a long-lived one fed from asyncio, like the live packager's
    ffmpeg): pass ``**options.popen_kwargs()`` to ``subprocess.Popen`` or
    ``asyncio.create_subprocess_exec``. Its owner enforces its time limits and kills its
    process group (``os.killpg(pid, SIGKILL)``) on error.

    :param memory_bytes: RLIMIT_AS for the child.
    """

    memory_bytes: int
    nice: int = 0

    def _preexec(self) -> None:
        _limit_child(self.memory_bytes, self.nice)

    def popen_kwargs(self) -> dict[str, object]:
        """Address-space limit, death with the parent, its own process group, C messages."""
        return {
            "preexec_fn": self._preexec,
            "start_new_session": True,
            "env": _child_env(),
        }


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr_tail: str
    seconds: float


class ManagedProcess:
    """One subprocess with a wall-clock timeout, an address-space limit and progress lines.

    It dies with its parent (``PR_SET_PDEATHSIG``), is killed as a process group on timeout,
    cancel or error, and is always reaped. A failure is logged (``process.failed``: argv,
    status, signal and the last stderr lines) and raised as :class:`ProcessFailed`; a
    program that cannot be started raises :class:`HostFailure`.

    :param timeout: seconds of wall-clock time before it is killed.
    :param memory_bytes: RLIMIT_AS for the child.
    :param on_line: called with each stdout line when given (stdout is then not kept).
    :param nice: added to the child's niceness (background work yields the CPU).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        memory_bytes: int,
        on_line: Callable[[str], None] | None = None,
        stdin_data: bytes | None = None,
        name: str = "subprocess",
        cwd: Path | None = None,
        nice: int = 0,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.nice = nice
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = threading.Event()
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self.on_line = on_line
        self.stdin_data = stdin_data
        self.name = name

    def _preexec(self) -> None:
        _limit_child(self.memory_bytes, self.nice)

    def run(self, check: bool = True) -> Completed:
        log.debug("process.start", name=self.name, argv=self.argv)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=self._preexec,  # noqa: PLW1509 - setrlimit/prctl only
                start_new_session=True,
                cwd=self.cwd,
                env=_child_env(),
            )
        except OSError as exc:  # ENOENT, EACCES, ENOEXEC: the program itself, not the input
            log.warning("process.not_started", name=self.name, argv=self.argv, error=str(exc))
            raise HostFailure(
                HostCause.TOOL, f"{self.name} could not start {self.argv[0]}: {exc.strerror}"
            ) from exc
        self._proc = proc
        if self._cancelled.is_set():
            self._kill(proc)
        stderr_tail: deque[bytes] = deque(maxlen=STDERR_LINES)
        stdout_chunks: list[bytes] = []

        def read_stdout() -> None:
            assert proc.stdout is not None
            if self.on_line is None:
                stdout_chunks.append(proc.stdout.read())
                return
            for raw in proc.stdout:
                with contextlib.suppress(Exception):
                    self.on_line(raw.decode("utf-8", "replace").rstrip("\n"))

        def read_stderr() -> None:
            assert proc.stderr is not None
            for raw in proc.stderr:
                stderr_tail.append(raw)

        def write_stdin() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.write(self.stdin_data or b"")
            with contextlib.suppress(OSError):
                proc.stdin.close()

        threads = [threading.Thread(target=read_stdout), threading.Thread(target=read_stderr)]
        if self.stdin_data is not None:
            threads.append(threading.Thread(target=write_stdin))
        for t in threads:
            t.daemon = True
            t.start()
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            raise ProcessTimeout(f"{self.name} ran longer than {self.timeout:.0f} s") from None
        except BaseException:
            self._kill(proc)
            raise
        finally:
            for t in threads:
                t.join(timeout=5)
        tail = b"".join(stderr_tail).decode("utf-8", "replace").strip()
        done = Completed(proc.returncode, b"".join(stdout_chunks), tail, time.monotonic() - started)
        log.debug(
            "process.exit", name=self.name, rc=proc.returncode, seconds=round(done.seconds, 3)
        )
        if check and proc.returncode != 0:
            failed = ProcessFailed(self.name, proc.returncode, tail, self.argv)
            log.log(
                logging.INFO if self._cancelled.is_set() else logging.WARNING,
                "process.cancelled" if self._cancelled.is_set() else "process.failed",
                name=self.name,
                rc=proc.returncode,
                signal=failed.signal,
                argv=self.argv,
                stderr=tail.splitlines()[-LOGGED_STDERR_LINES:],
            )
            raise failed
        return done

    @property
    def pid(self) -> int | None:
        """The child's process id once started (its process group has the same id)."""
        return self._proc.pid if self._proc is not None else None

    def cancel(self) -> None:
        """Kill the process (from another thread); ``run`` then raises ProcessFailed."""
        self._cancelled.set()
        if self._proc is not None:
            self._kill(self._proc, wait=False)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes], wait: bool = True) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if wait:
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
