"""Playback ids of an asset: add one with a policy (``public`` or ``signed``), remove one.

A removed id stops playing within the origin's lookup-cache time (a few seconds), as a
revoked signing key does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from mediaplane.events import EventType

from ._models import PlaybackId, PlaybackPolicy
from ._service import AssetAction, AssetNotFound, authorized_asset, emit_asset_event

if TYPE_CHECKING:
    from mediaplane.accounts import Principal
    from mediaplane.runtime import Runtime

__all__ = ["add_playback_id", "remove_playback_id"]

log = structlog.get_logger("mediaplane.catalog")


def add_playback_id(
    runtime: Runtime, principal: Principal, asset_id: str, policy: PlaybackPolicy
) -> dict[str, Any]:
    """Give the asset a new playback id with ``policy``; its API shape (404 for an asset the
    caller cannot see, 403 without the editor role in its channel)."""
    with runtime.db.session() as s:
        asset = authorized_asset(s, principal, asset_id, AssetAction.EDIT)
        pid = PlaybackId(policy=policy)
        asset.playback_ids.append(pid)
        s.flush()
        data = {"id": pid.id, "policy": str(pid.policy)}
        emit_asset_event(s, EventType.ASSET_UPDATED, asset, runtime.settings)
    log.info("asset.playback_id_added", asset_id=asset_id, policy=str(policy))
    return data


def remove_playback_id(
    runtime: Runtime, principal: Principal, asset_id: str, playback_id: str
) -> None:
    """Remove one playback id of the asset (404 when the asset has no such id)."""
    with runtime.db.session() as s:
        asset = authorized_asset(s, principal, asset_id, AssetAction.EDIT)
        pid = next((p for p in asset.playback_ids if p.id == playback_id), None)
        if pid is None:
            raise AssetNotFound(f"The asset has no playback id {playback_id!r}.")
        asset.playback_ids.remove(pid)
        emit_asset_event(s, EventType.ASSET_UPDATED, asset, runtime.settings)
    log.info("asset.playback_id_removed", asset_id=asset_id)
