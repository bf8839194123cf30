"""Catalog: assets and playback ids, their rights, and the asset REST API.

Errors::

    CatalogError
    ├── AssetNotFound       (also a mediaplane.errors.NotFound: 404)
    ├── InvalidAssetInput   (source type, rights, passthrough; has an API ``code``)
    └── TerritoryTableError (the operator's CIDR→country file)
"""

from __future__ import annotations

from ._models import (
    Asset,
    AssetStatus,
    FingerprintStatus,
    ModerationStatus,
    PlaybackId,
    PlaybackPolicy,
    SourceType,
)
from ._payloads import (
    AssetJob,
    EncodeChunk,
    FingerprintAudio,
    ImportUrl,
    ProcessAsset,
    StitchRung,
)
from ._rights import (
    COUNTRY_CODES,
    InvalidAssetInput,
    PlaybackTerms,
    Refusal,
    Rights,
    TerritoryTable,
    TerritoryTableError,
    load_territory_table,
    normalize_territory,
    parse_passthrough,
    parse_rights,
    parse_rights_text,
    parse_source_type,
    playback_refusal,
)
from ._service import (
    AssetNotFound,
    CatalogError,
    asset_for_playback,
    asset_to_api,
    delete_asset,
    find_by_content_hash,
    get_asset,
    ingest_file,
    ingest_source,
    ingest_url,
    initial_moderation,
    list_assets,
    moderate_asset,
    playback_urls,
    poster_key,
    progress_of,
    queue_fingerprint,
    record_content_hash,
    sha256_file,
    source_key,
    update_asset,
)
from ._views import PlaybackView, asset_views, playback_view

__all__ = [
    "COUNTRY_CODES",
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
    "PlaybackId",
    "PlaybackPolicy",
    "PlaybackTerms",
    "PlaybackView",
    "ProcessAsset",
    "Refusal",
    "Rights",
    "SourceType",
    "StitchRung",
    "TerritoryTable",
    "TerritoryTableError",
    "asset_for_playback",
    "asset_to_api",
    "asset_views",
    "delete_asset",
    "find_by_content_hash",
    "get_asset",
    "ingest_file",
    "ingest_source",
    "ingest_url",
    "initial_moderation",
    "list_assets",
    "load_territory_table",
    "moderate_asset",
    "normalize_territory",
    "parse_passthrough",
    "parse_rights",
    "parse_rights_text",
    "parse_source_type",
    "playback_refusal",
    "playback_urls",
    "playback_view",
    "poster_key",
    "progress_of",
    "queue_fingerprint",
    "record_content_hash",
    "sha256_file",
    "source_key",
    "update_asset",
]


def api_router() -> object:
    """The /api/v1/assets router (imported lazily: it pulls in FastAPI and accounts)."""
    from ._api import router

    return router


__all__ += ["api_router"]
