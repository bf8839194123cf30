"""The asset as the pipeline's jobs see it: whether work on it is still wanted, how an
invalid input ends a job, and the asset errored when a job gives up."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog

from mediaplane.catalog import Asset, AssetJob, AssetStatus, emit_asset_event
from mediaplane.events import EventType
from mediaplane.jobs import JobContext, PermanentJobError
from mediaplane.media import InvalidMedia, Presentation

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.pipeline")


def resumable(asset: Asset | None) -> bool:
    """Whether a processing attempt should run: not deleted, not errored, not finished."""
    if asset is None or asset.status is AssetStatus.ERRORED or not asset.source_key:
        return False
    return not (asset.presentation and Presentation.from_dict(asset.presentation).complete)


def load_pending(rt: Runtime, asset_id: str) -> Asset | None:
    """The asset (detached) if it still needs work (not deleted, errored or finished)."""
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if not resumable(asset):
            log.info("asset.skip", asset_id=asset_id)
            return None
        assert asset is not None
        s.expunge(asset)
        return asset


@contextlib.contextmanager
def invalid_input_is_permanent() -> Iterator[None]:
    """An input that cannot become an asset fails the job without retries (the message is
    the creator's)."""
    try:
        yield
    except InvalidMedia as exc:
        raise PermanentJobError(str(exc)) from exc


def asset_gave_up(ctx: JobContext, payload: AssetJob, message: str, *, permanent: bool) -> None:
    """A job for this asset will not be retried: the asset is errored, saying why."""
    asset_id = payload.asset_id
    with ctx.runtime.db.session() as s:
        row = s.get(Asset, asset_id)
        if row is None:
            return
        first = row.status is not AssetStatus.ERRORED
        row.status = AssetStatus.ERRORED
        row.errors = {
            "type": "invalid_input" if permanent else "internal_error",
            "messages": [message],
        }
        if first:  # a second job giving up on it is no new event
            emit_asset_event(s, EventType.ASSET_ERRORED, row, ctx.runtime.settings)
    log.info("asset.errored", asset_id=asset_id, message=message)
