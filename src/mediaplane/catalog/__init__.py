"""Catalog: assets and playback ids, their rights, and the asset REST API.

Errors::

    CatalogError
    ├── AssetNotFound       (also a mediaplane.errors.NotFound: 404)
    ├── InvalidAssetInput   (source type, rights, passthrough; has an API ``code``)
    └── TerritoryTableError (the operator's CIDR→country file)
"""

from __future__ import annotations

from ._api import router
from ._models import Asset, AssetStatus, FingerprintStatus, ModerationStatus, PlaybackPolicy
from ._payloads import AssetJob, EncodeChunk, FingerprintAudio, ImportUrl, ProcessAsset, StitchRung
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
)
from ._service import (
    AssetNotFound,
    CatalogError,
    asset_for_playback,
    emit_asset_event,
    get_asset,
    ingest_file,
    ingest_source,
    playback_urls,
    poster_key,
    queue_fingerprint,
    record_content_hash,
    sha256_file,
    source_key,
)
from ._views import asset_views, playback_view

__all__ = [
    "Asset",
    "AssetJob",
    "AssetNotFound",
    "AssetStatus",
    "CatalogError",
    "EncodeChunk",
    "FingerprintAudio",
    "FingerprintStatus",
    "ImportUrl",
    "InvalidAssetInput",
    "ModerationStatus",
    "PlaybackPolicy",
    "PlaybackTerms",
    "ProcessAsset",
    "Refusal",
    "Rights",
    "StitchRung",
    "TerritoryTableError",
    "asset_for_playback",
    "asset_views",
    "emit_asset_event",
    "get_asset",
    "ingest_file",
    "ingest_source",
    "load_territory_table",
    "normalize_territory",
    "parse_passthrough",
    "parse_source_type",
    "playback_refusal",
    "playback_urls",
    "playback_view",
    "poster_key",
    "queue_fingerprint",
    "record_content_hash",
    "router",
    "sha256_file",
    "source_key",
]
