from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._model import JobType

if TYPE_CHECKING:
    from mediaplane.config import Settings


@dataclass(frozen=True)
class JobSpec:
    """Everything that differs between job types, in one row."""

    handler: str  # "module:function" taking (JobContext)
    on_give_up: (
        str  # "module:function" taking (JobContext, message, permanent=) when no attempt is left
    )
    queue: str
    #: Attempts before giving up; None: the operator's ``MEDIAPLANE_JOB_MAX_ATTEMPTS``.
    max_attempts: int | None
    #: Upper bound for one attempt; ffmpeg gets its own bound from the media duration.
    timeout_seconds: float

    def attempts(self, settings: Settings) -> int:
        """Attempts a job of this type gets: its own bound, else the operator's setting."""
        return self.max_attempts if self.max_attempts is not None else settings.job_max_attempts

    def resolve(self, name: str) -> Callable[..., Any]:
        module, _, attr = getattr(self, name).partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return fn


JOB_SPECS: dict[JobType, JobSpec] = {
    JobType.IMPORT_URL: JobSpec(
        handler="mediaplane.ingest._jobs:import_url",
        on_give_up="mediaplane.pipeline:asset_gave_up",
        queue="io",
        max_attempts=None,
        timeout_seconds=3600,
    ),
    JobType.PROCESS_ASSET: JobSpec(
        handler="mediaplane.pipeline:process_asset",
        on_give_up="mediaplane.pipeline:asset_gave_up",
        queue="media",
        max_attempts=None,
        timeout_seconds=6 * 3600,
    ),
    # Duplicate detection only: giving up never errors the asset, it marks the fingerprint.
    JobType.FINGERPRINT_AUDIO: JobSpec(
        handler="mediaplane.pipeline:fingerprint_asset",
        on_give_up="mediaplane.pipeline:fingerprint_gave_up",
        queue="media",
        max_attempts=None,
        timeout_seconds=3600,
    ),
    # A chunked ladder: one rung over one span of the source per job, on any worker.
    JobType.ENCODE_CHUNK: JobSpec(
        handler="mediaplane.pipeline:encode_chunk_job",
        on_give_up="mediaplane.pipeline:asset_gave_up",
        queue="media",
        max_attempts=None,
        timeout_seconds=3600,
    ),
    # Joins a rung's chunks, packages the rung and adds it to the asset's manifests. Its own
    # queue: a rung whose chunks are done is published next, not after every queued chunk.
    JobType.STITCH_RUNG: JobSpec(
        handler="mediaplane.pipeline:stitch_rung_job",
        on_give_up="mediaplane.pipeline:asset_gave_up",
        queue="package",
        max_attempts=None,
        timeout_seconds=3600,
    ),
}
