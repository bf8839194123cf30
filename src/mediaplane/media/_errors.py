from __future__ import annotations


class MediaError(Exception):
    """Root of media errors."""


class ToolMissing(MediaError):
    """ffmpeg, ffprobe or the packager is missing or too old; the message says how to fix it."""


class InvalidMedia(MediaError):
    """The input cannot become a playable asset; the message is written for the creator."""


class ProcessFailed(MediaError):
    """A media subprocess exited non-zero."""

    def __init__(self, name: str, returncode: int, stderr_tail: str) -> None:
        self.name = name
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(f"{name} exited with status {returncode}: {stderr_tail[-800:]}")


class ProcessTimeout(MediaError):
    """A media subprocess ran past its time limit and was killed."""
