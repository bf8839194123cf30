"""Catalog: assets and playback ids, their rights, and the asset REST API.

Errors::

    CatalogError
    ├── AssetNotFound
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
from ._rights import (
    COUNTRY_CODES,
    InvalidAssetInput,
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

__all__ = [
    "COUNTRY_CODES",
    "Asset",
    "AssetNotFound",
    "AssetStatus",
    "CatalogError",
    "FingerprintStatus",
    "InvalidAssetInput",
    "ModerationStatus",
    "PlaybackId",
    "PlaybackPolicy",
    "Refusal",
    "Rights",
    "SourceType",
    "TerritoryTable",
    "TerritoryTableError",
    "asset_for_playback",
    "asset_to_api",
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
    "playback_urls",
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
