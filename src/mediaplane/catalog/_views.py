"""What the routers (the asset API, the pages) call: one function per request, answering
in the API's JSON shape, with the database work inside (so a router is parse → call →
respond, and blocking work runs where the router runs it: a thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._models import ModerationStatus
from ._rights import Rights
from ._service import (
    asset_for_playback,
    asset_to_api,
    get_asset,
    ingest_file,
    ingest_url,
    list_assets,
    moderate_asset,
    progress_of,
    update_asset,
)

if TYPE_CHECKING:
    from pathlib import Path

    from mediaplane.runtime import Runtime

__all__ = [
    "PlaybackView",
    "asset_view",
    "asset_views",
    "decide_moderation",
    "edit_asset",
    "import_asset",
    "playback_view",
    "upload_asset",
]


def asset_view(runtime: Runtime, asset_id: str, base_url: str | None = None) -> dict[str, Any]:
    """The API shape of one asset (404 :class:`AssetNotFound`), with its progress.

    :param base_url: what playback URLs start with; the public URL when None.
    """
    base = runtime.settings.effective_public_url if base_url is None else base_url
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        return asset_to_api(asset, progress_of(s, [asset]).get(asset.id), base)


def asset_views(
    runtime: Runtime,
    *,
    limit: int,
    page: int,
    content_hash: str | None = None,
    base_url: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """A page of assets in the API shape, newest first, and how many there are in all."""
    base = runtime.settings.effective_public_url if base_url is None else base_url
    with runtime.db.session() as s:
        rows, total = list_assets(s, limit=limit, page=page, content_hash=content_hash)
        progress = progress_of(s, rows)
        return [asset_to_api(a, progress.get(a.id), base) for a in rows], total


def upload_asset(runtime: Runtime, path: Path, **fields: Any) -> dict[str, Any]:
    """:func:`ingest_file`, answered in the API shape."""
    return asset_view(runtime, ingest_file(runtime, path, **fields).id)


def import_asset(runtime: Runtime, url: str, **fields: Any) -> dict[str, Any]:
    """:func:`ingest_url`, answered in the API shape."""
    return asset_view(runtime, ingest_url(runtime, url, **fields).id)


def edit_asset(runtime: Runtime, asset_id: str, **changes: Any) -> dict[str, Any]:
    """:func:`update_asset`, answered in the API shape."""
    update_asset(runtime, asset_id, **changes)
    return asset_view(runtime, asset_id)


def decide_moderation(runtime: Runtime, asset_id: str, *, approve: bool) -> dict[str, Any]:
    """:func:`moderate_asset`, answered in the API shape."""
    moderate_asset(runtime, asset_id, approve=approve)
    return asset_view(runtime, asset_id)


@dataclass(frozen=True)
class PlaybackView:
    """What a page shows of the asset behind a playback id, and what decides playback."""

    asset: dict[str, Any]
    moderation: ModerationStatus
    rights: Rights | None


def playback_view(runtime: Runtime, playback_id: str, base_url: str = "") -> PlaybackView:
    """The asset behind ``playback_id`` in the API shape (404 :class:`AssetNotFound`)."""
    with runtime.db.session() as s:
        asset, _ = asset_for_playback(s, playback_id)
        data = asset_to_api(asset, progress_of(s, [asset]).get(asset.id), base_url)
        rights = Rights.from_json(asset.rights) if asset.rights else None
        return PlaybackView(data, asset.moderation, rights)
