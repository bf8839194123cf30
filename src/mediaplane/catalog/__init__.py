"""Catalog: assets and playback ids, their rights, and the asset REST API.

Errors::

    CatalogError
    ├── AssetNotFound       (also a mediaplane.errors.NotFound: 404)
    ├── InvalidAssetInput   (source type, rights, passthrough; has an API ``code``)
    └── TerritoryTableError (the operator's CIDR→country file)
"""

from __future__ import annotations

from ._access_rules import MAX_RENTAL_HOURS, asset_rule, parse_access_rule
from ._api import router
from ._cpix_api import router as cpix_router
from ._models import (
    Asset,
    AssetStatus,
    FingerprintStatus,
    ModerationStatus,
    PlaybackId,
    PlaybackPolicy,
    Protection,
)
from ._payloads import (
    AssetJob,
    EncodeChunk,
    FingerprintAudio,
    FinishRecording,
    ImportUrl,
    ProcessAsset,
    RepackageAsset,
    StitchRung,
)
from ._rights import (
    InvalidAssetInput,
    PlaybackTerms,
    Refusal,
    Rights,
    TerritoryTableError,
    load_territory_table,
    normalize_territory,
    parse_passthrough,
    parse_source_type,
    playback_refusal,
    viewer_territory,
)
from ._service import (
    AssetAction,
    AssetNotFound,
    CatalogError,
    asset_for_playback,
    authorized_asset,
    create_recording_asset,
    emit_asset_event,
    emit_tracks_ready,
    get_asset,
    ingest_file,
    ingest_source,
    playback_urls,
    poster_key,
    queue_fingerprint,
    record_content_hash,
    sha256_file,
    source_key,
    visible_to,
    watchable_by,
)
from ._views import (
    PlaybackView,
    asset_views,
    entitlement_view,
    may_read,
    own_asset_views,
    playback_view,
    public_asset_views,
)

__all__ = [
    "MAX_RENTAL_HOURS",
    "PlaybackView",
    "asset_rule",
    "entitlement_view",
    "parse_access_rule",
    "Asset",
    "AssetAction",
    "AssetJob",
    "AssetNotFound",
    "AssetStatus",
    "CatalogError",
    "EncodeChunk",
    "FingerprintAudio",
    "FinishRecording",
    "FingerprintStatus",
    "ImportUrl",
    "InvalidAssetInput",
    "ModerationStatus",
    "PlaybackId",
    "PlaybackPolicy",
    "PlaybackTerms",
    "ProcessAsset",
    "Protection",
    "RepackageAsset",
    "Refusal",
    "Rights",
    "StitchRung",
    "TerritoryTableError",
    "asset_for_playback",
    "asset_views",
    "authorized_asset",
    "create_recording_asset",
    "emit_asset_event",
    "emit_tracks_ready",
    "get_asset",
    "ingest_file",
    "ingest_source",
    "load_territory_table",
    "normalize_territory",
    "viewer_territory",
    "parse_passthrough",
    "parse_source_type",
    "playback_refusal",
    "playback_urls",
    "may_read",
    "own_asset_views",
    "playback_view",
    "public_asset_views",
    "poster_key",
    "queue_fingerprint",
    "record_content_hash",
    "cpix_router",
    "router",
    "sha256_file",
    "source_key",
    "visible_to",
    "watchable_by",
]
