"""The URL import job: fetch (see ``_fetch``) into the asset's source, then process it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import structlog

from mediaplane.catalog import (
    Asset,
    ImportUrl,
    ProcessAsset,
    queue_fingerprint,
    record_content_hash,
    source_key,
)
from mediaplane.config import redact
from mediaplane.intake import IngestError
from mediaplane.jobs import JobContext, PermanentJobError, create_job, dispatch

from ._fetch import FetchLimits, fetch_url

if TYPE_CHECKING:
    from mediaplane.config import Settings

log = structlog.get_logger("mediaplane.ingest")


def _limits(s: Settings) -> FetchLimits:
    return FetchLimits(
        allow=tuple(s.import_allow),
        # An import is an upload by other means: the upload limit holds for it too.
        max_bytes=min(s.import_max_bytes, s.max_upload_bytes),
        timeout=s.import_timeout_seconds,
        max_redirects=s.import_max_redirects,
    )


def import_url(ctx: JobContext, payload: ImportUrl) -> None:
    rt = ctx.runtime
    asset_id, url = payload.asset_id, payload.url
    tmp_root = rt.settings.data_path / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        dest = Path(tmp) / "download"
        try:
            size, content_hash = fetch_url(url, dest, _limits(rt.settings), ctx.progress)
        except IngestError as exc:  # refused, too large, HTTP error, out of time
            raise PermanentJobError(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise RuntimeError(f"download failed: {redact(str(exc))}") from None  # retried
        key = source_key(asset_id)
        rt.store.put_file(key, dest)
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None:
            rt.store.delete(key)
            return
        asset.source_key, asset.source_size = key, size
        record_content_hash(s, asset, content_hash)
        job = create_job(s, ProcessAsset(asset_id=asset_id), subject_id=asset_id)
        fingerprint = queue_fingerprint(s, asset)
    dispatch(rt, job.id, job.type)
    dispatch(rt, fingerprint.id, fingerprint.type)
    log.info("import.done", asset_id=asset_id, bytes=size)
