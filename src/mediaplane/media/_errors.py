"""Media errors, and :func:`classify`: whose fault a failed media subprocess is.

A failed ffmpeg run is either the creator's to fix (the file cannot be read: the asset is
errored at once, with advice) or the operator's (the host ran out of disk or memory, killed
the process, lacks an encoder or a program: the job is retried and ffmpeg's stderr and argv
are logged). See :func:`classify` for how the two are told apart.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import signal as _signal
from collections.abc import Sequence


class MediaError(Exception):
    """Root of media errors."""


class ToolMissing(MediaError):
    """ffmpeg, ffprobe or the packager is missing or too old; the message says how to fix it."""


class InvalidMedia(MediaError):
    """The input cannot become a playable asset; the message is written for the creator."""


class ProcessFailed(MediaError):
    """A media subprocess exited non-zero (or was killed: ``signal`` is then set)."""

    def __init__(
        self, name: str, returncode: int, stderr_tail: str, argv: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.argv = list(argv)
        #: The signal that ended it (Popen reports ``-N`` for "killed by signal N").
        self.signal = -returncode if returncode < 0 else None
        super().__init__(f"{name} exited with status {returncode}: {stderr_tail[-800:]}")


class ProcessTimeout(MediaError):
    """A media subprocess ran past its time limit and was killed."""


class HostCause(enum.StrEnum):
    """Why a media subprocess failed on this host, for the operator."""

    SIGNAL = "signal"  # killed: the kernel's OOM killer, a container limit, an operator
    MEMORY = "memory_limit"  # MEDIAPLANE_SUBPROCESS_MEMORY_BYTES (RLIMIT_AS) is too low
    DISK = "disk"  # no space, quota, read-only or failing disk under the data dir
    ENCODER = "encoder"  # this ffmpeg lacks or refuses an encoder/option our command names
    TOOL = "tool"  # the program is missing or cannot start
    UNKNOWN = "unknown"  # failed on files we made ourselves: not the creator's doing


_HINTS = {
    HostCause.SIGNAL: "it was killed (the kernel OOM killer, a container limit or an operator)",
    HostCause.MEMORY: "raise MEDIAPLANE_SUBPROCESS_MEMORY_BYTES or give the host more memory",
    HostCause.DISK: "free space under the data directory (work files and the source cache)",
    HostCause.ENCODER: (
        "the encoder is missing from this ffmpeg, refuses our options, or is short of memory"
        " (MEDIAPLANE_SUBPROCESS_MEMORY_BYTES); Mediaplane needs libx264 and aac"
    ),
    HostCause.TOOL: "install the program or fix its path setting",
    HostCause.UNKNOWN: "see the stderr lines in the log",
}


class HostFailure(MediaError):
    """A media subprocess failed because of the host, not the file: the job is retried and
    the operator reads why in the log (``failed`` holds the exit status, argv and stderr)."""

    def __init__(self, cause: HostCause, detail: str, failed: ProcessFailed | None = None):
        self.cause = cause
        self.detail = detail
        self.failed = failed
        tail = f"; stderr: {failed.stderr_tail[-500:]}" if failed and failed.stderr_tail else ""
        super().__init__(f"{detail} ({cause}: {_HINTS[cause]}){tail}")


def _strerror(*codes: int) -> list[str]:
    # ffmpeg reports AVERROR(errno) through av_strerror(), which is strerror_r(): the C
    # library's text for that errno. Subprocesses run with LC_MESSAGES=C (ManagedProcess),
    # so os.strerror() here gives the very text the child prints.
    return [os.strerror(code) for code in codes]


#: What a failed ffmpeg/ffprobe/packager run names, by cause, checked in this order. ffmpeg
#: exits 1 for nearly every error, so past the exit status and signal its stderr is the only
#: record of what happened: errno texts first (see :func:`_strerror`), then the few fixed
#: messages of the dynamic loader, libx264 and ffmpeg's own option parser.
_HOST_PATTERNS: list[tuple[HostCause, re.Pattern[str]]] = [
    (
        HostCause.MEMORY,
        re.compile(
            "|".join(
                [
                    *map(re.escape, _strerror(errno.ENOMEM)),
                    # Under RLIMIT_AS a new thread's stack cannot be mapped: pthread_create
                    # fails with EAGAIN, which ffmpeg's filter and codec threads report.
                    *map(re.escape, _strerror(errno.EAGAIN)),
                    r"malloc of size \d+ failed",  # libx264's own allocator
                    r"failed to map segment from shared object",  # ld.so under RLIMIT_AS
                ]
            )
        ),
    ),
    (
        HostCause.DISK,
        re.compile(
            "|".join(
                map(
                    re.escape,
                    _strerror(errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO),
                )
            )
        ),
    ),
    (
        HostCause.ENCODER,
        re.compile(
            "|".join(
                [
                    r"Unknown encoder '",  # fftools: -c:v names an encoder not built in
                    r"Encoder not found",  # av_strerror(AVERROR_ENCODER_NOT_FOUND)
                    # An encoder that will not open on inputs the probe accepted is refused
                    # by our own options or the host (x264 alone, under a memory limit, fails
                    # with nothing but this line when its threads cannot start).
                    r"Error while opening encoder for output stream",
                    r"Unrecognized option '|Option not found",  # an argv this ffmpeg lacks
                ]
            )
        ),
    ),
]

#: ffmpeg catches SIGINT/SIGTERM, stops cleanly and then exits with this status
#: (fftools/ffmpeg.c: ``exit_program(received_nb_signals ? 255 : main_return_code)``).
FFMPEG_SIGNALLED = 255
#: The shell/ld.so convention: the program was found but could not be started.
CANNOT_EXECUTE = (126, 127)


def host_cause(failed: ProcessFailed) -> tuple[HostCause, str] | None:
    """The operator-side cause of ``failed`` and a one-line account, or None when nothing
    points at the host (then the input is to blame)."""
    if failed.signal is not None:
        try:
            name = _signal.Signals(failed.signal).name
        except ValueError:
            name = f"signal {failed.signal}"
        return HostCause.SIGNAL, f"{failed.name} was killed by {name}"
    for cause, pattern in _HOST_PATTERNS:
        found = pattern.search(failed.stderr_tail)
        if found is not None:
            return cause, f"{failed.name} failed: {found.group(0)}"
    if failed.returncode == FFMPEG_SIGNALLED and failed.name.startswith("ffmpeg"):
        return HostCause.SIGNAL, f"{failed.name} stopped on a termination signal"
    if failed.returncode in CANNOT_EXECUTE:
        return HostCause.TOOL, f"{failed.name} could not start (status {failed.returncode})"
    return None


def classify(failed: ProcessFailed, creator_message: str | None) -> InvalidMedia | HostFailure:
    """The one mapping of a failed media subprocess to whose problem it is.

    Operator-side evidence wins: a signal, the exit statuses above, then errno and tool
    texts on stderr (:data:`_HOST_PATTERNS`). Without any, the input is to blame and the
    result is ``InvalidMedia(creator_message)`` — unless there is no creator message
    (``None``: the command read only files we made), which makes it the host's too.
    """
    cause = host_cause(failed)
    if cause is not None:
        return HostFailure(cause[0], cause[1], failed)
    if creator_message is None:
        return HostFailure(HostCause.UNKNOWN, f"{failed.name} failed", failed)
    return InvalidMedia(creator_message)


class ManifestError(MediaError, ValueError):
    """A playlist or MPD that cannot be read: malformed, too large, or not of that kind."""


class Fmp4Error(MediaError, ValueError):
    """A fragmented MP4 stream that cannot be read: a box too large, truncated or out of
    order, or a fragment that is not one CMAF track (see :mod:`._fmp4`)."""
