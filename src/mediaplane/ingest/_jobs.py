"""The URL import job: fetch with redirects and size capped, every hop re-checked."""

from __future__ import annotations

import hashlib
import ipaddress
import tempfile
from pathlib import Path
from urllib.parse import urljoin

import httpx
import structlog

from mediaplane.catalog import Asset, queue_fingerprint, record_content_hash, source_key
from mediaplane.jobs import JobContext, JobType, PermanentJobError, create_job, dispatch

from ._url import UrlRefused, address_allowed, check_url

log = structlog.get_logger("mediaplane.ingest")


def _fetch(ctx: JobContext, url: str, dest: Path) -> tuple[int, str]:
    """Download ``url`` to ``dest``; returns (bytes, sha256 hex of them)."""
    s = ctx.runtime.settings
    timeout = httpx.Timeout(30.0, read=60.0)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(s.import_max_redirects + 1):
            try:
                check_url(url, s.import_allow)
            except UrlRefused as exc:
                raise PermanentJobError(str(exc)) from exc
            with client.stream("GET", url, headers={"User-Agent": "Mediaplane-Import/0.1"}) as r:
                stream = r.extensions.get("network_stream")
                peer = stream.get_extra_info("server_addr") if stream is not None else None
                if peer and not address_allowed(ipaddress.ip_address(peer[0]), s.import_allow):
                    raise PermanentJobError("The URL resolved to a private address; refused.")
                if r.is_redirect:
                    url = urljoin(url, r.headers.get("location", ""))
                    continue
                if r.status_code >= 400:
                    raise PermanentJobError(
                        f"The URL answered HTTP {r.status_code}; nothing was imported."
                    )
                declared = int(r.headers.get("content-length") or 0)
                if declared > s.import_max_bytes:
                    raise PermanentJobError("The file at the URL is larger than the import limit.")
                size = 0
                digest = hashlib.sha256()
                with dest.open("wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        size += len(chunk)
                        if size > s.import_max_bytes:
                            raise PermanentJobError(
                                "The file at the URL is larger than the import limit."
                            )
                        f.write(chunk)
                        digest.update(chunk)
                        if declared:
                            ctx.progress(100.0 * size / declared)
                if size == 0:
                    raise PermanentJobError("The URL returned an empty file.")
                return size, digest.hexdigest()
    raise PermanentJobError("The URL redirected too many times.")


def import_url(ctx: JobContext) -> None:
    rt = ctx.runtime
    asset_id, url = ctx.payload["asset_id"], ctx.payload["url"]
    tmp_root = rt.settings.data_path / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        dest = Path(tmp) / "download"
        try:
            size, content_hash = _fetch(ctx, url, dest)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"download failed: {exc}") from exc  # retried
        key = source_key(asset_id)
        rt.store.put_file(key, dest)
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        if asset is None:
            rt.store.delete(key)
            return
        asset.source_key, asset.source_size = key, size
        record_content_hash(s, asset, content_hash)
        job = create_job(s, JobType.PROCESS_ASSET, {"asset_id": asset_id}, subject_id=asset_id)
        fingerprint = queue_fingerprint(s, asset)
    dispatch(rt, job.id, job.type)
    dispatch(rt, fingerprint.id, fingerprint.type)
    log.info("import.done", asset_id=asset_id, bytes=size)
