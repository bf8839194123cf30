"""The job table: one row per job type, assembled by the app (``mediaplane.app.job_table``).

The mechanism reads each row and never names a type itself; a row's payload model names
its type, so an enqueuer writes ``create_job(s, ProcessAsset(asset_id=…))`` and the table
checks that each handler takes the model it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from ._errors import UnknownJobType

if TYPE_CHECKING:
    from ._context import JobContext


class JobPayload(BaseModel):
    """A job type's input, stored as JSON on the job row. Subclasses set ``job_type``.

    Models that only share fields (a base for several types) leave it unset.
    """

    model_config = ConfigDict(frozen=True)

    #: The job type's name, stored in ``jobs.type`` (at most 40 characters).
    job_type: ClassVar[str]


P = TypeVar("P", bound=JobPayload)
P_contra = TypeVar("P_contra", bound=JobPayload, contravariant=True)

#: Runs one attempt; raises PermanentJobError for input that can never succeed.
Handler = Callable[["JobContext", P], None]


class GiveUp(Protocol[P_contra]):
    """Called once when a job will not be retried; ``message`` is meant for the creator."""

    def __call__(
        self, ctx: JobContext, payload: P_contra, message: str, /, *, permanent: bool
    ) -> None: ...


@dataclass(frozen=True)
class JobSpec(Generic[P]):
    """Everything that differs between job types, in one row."""

    payload: type[P]
    handler: Handler[P]
    on_give_up: GiveUp[P]
    #: Queue name without the install's namespace (``media`` → ``mediaplane.media``).
    queue: str
    #: Attempts before giving up (failures not caused by the input, stalls, timeouts).
    attempts: int
    #: Upper bound for one attempt: the watchdog re-queues (or gives up on) a job running
    #: longer. Subprocesses get their own, tighter bounds inside it.
    timeout_seconds: float
    #: How many jobs of this type may run at once across the deployment; None: no limit.
    concurrency: int | None = None

    def __post_init__(self) -> None:
        name = getattr(self.payload, "job_type", None)
        if not isinstance(name, str) or not 0 < len(name) <= 40:
            raise ValueError(f"{self.payload.__name__}.job_type must name the job type")
        if self.attempts < 1 or self.timeout_seconds <= 0:
            raise ValueError(f"{name}: attempts and timeout_seconds must be positive")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"{name}: concurrency must be at least 1 (None: no limit)")

    @property
    def name(self) -> str:
        return self.payload.job_type


class JobTable(Mapping[str, JobSpec[Any]]):
    """The job types one process can dispatch, run and watch, by name."""

    def __init__(self, specs: Iterable[JobSpec[Any]] = ()) -> None:
        self._specs: dict[str, JobSpec[Any]] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"job type {spec.name!r} is in the table twice")
            self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> JobSpec[Any]:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownJobType(
                f"job type {name!r} is not in this process's job table "
                "(assembled in mediaplane.app.job_table)"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def queues(self) -> list[str]:
        """The queues the table's types are sent to (without the namespace)."""
        return sorted({spec.queue for spec in self._specs.values()})
