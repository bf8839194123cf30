from __future__ import annotations


class JobError(Exception):
    """Root of job errors."""


class PermanentJobError(JobError):
    """The input can never succeed; the message is shown to the creator as is."""


class InvalidTransition(JobError):
    """A state change the job state machine does not allow."""


class UnknownJobType(JobError, KeyError):
    """A job type that is not a row of this process's job table."""

    def __str__(self) -> str:  # KeyError quotes its argument; say it in words
        return str(self.args[0]) if self.args else "unknown job type"
