"""REST API: an asset's content keys as CPIX 2.3, for a commercial multi-DRM service
(admins only; every export is in the key-release audit log).

* ``GET /api/v1/assets/{id}/cpix`` — the keys in force, in the clear (over TLS);
* ``POST /api/v1/assets/{id}/cpix/export`` ``{"certificate": PEM}`` — the same, the keys
  encrypted for that certificate (CPIX content key encryption);
* ``PUT /api/v1/assets/{id}/cpix`` — import a provider's document: its keys replace the
  asset's keys of the same track types, its DRM systems' signalling (PSSH) is kept.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import Principal, require_admin, truncate_address
from mediaplane.http import ApiError, runtime_dep
from mediaplane.intake import UploadError, read_body
from mediaplane.media import common_pssh
from mediaplane.protect import (
    COMMON_SYSTEM_ID,
    MAX_CPIX_BYTES,
    TRACK_TYPES,
    CpixDocument,
    CpixError,
    CpixKey,
    DrmSignal,
    ProtectError,
    record_release,
    signals_for,
    store_signals,
)
from mediaplane.runtime import Runtime

from ._service import AssetBusy, get_asset, repackage_with_keys

router = APIRouter(prefix="/api/v1", tags=["content protection"])
CPIX_MEDIA_TYPE = "application/xml"


class ExportJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate: str = Field(max_length=16384, description="PEM, an RSA key of 2048+ bits")


def _document(rt: Runtime, asset_id: str) -> CpixDocument:
    with rt.db.session() as s:
        get_asset(s, asset_id)  # 404 for an unknown asset
    keys = rt.keys.current_keys(asset_id)
    if not keys:
        raise ApiError(
            409, "no_keys", "This asset has no content keys: give it a protection policy first."
        )
    kids = [k.kid for k in keys.values()]
    systems = [DrmSignal(COMMON_SYSTEM_ID, k, pssh=common_pssh([k])) for k in kids]
    return CpixDocument(
        content_id=asset_id,
        keys=[CpixKey(kid=k.kid, key=k.key, track_type=t) for t, k in sorted(keys.items())],
        systems=systems + signals_for(rt.db, kids),
    )


def _audit(rt: Runtime, request: Request, who: Principal, doc: CpixDocument, how: str) -> None:
    for k in doc.keys:
        record_release(
            rt.db,
            kid=k.kid.hex(),
            asset_id=doc.content_id,
            playback_id=None,
            principal=f"user:{who.user_id}" if who.user_id else who.via,
            channel=how,
            granted=True,
            reason="admin_export",
            address=truncate_address(request.client.host if request.client else None),
        )


def _xml(body: bytes) -> Response:
    return Response(body, media_type=CPIX_MEDIA_TYPE, headers={"Cache-Control": "no-store"})


@router.get("/assets/{asset_id}/cpix", response_class=Response)
async def export_cpix(
    asset_id: str,
    request: Request,
    who: Principal = Depends(require_admin),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    """The asset's keys in force as a CPIX 2.3 document, keys in the clear."""

    def run() -> bytes:
        doc = _document(rt, asset_id)
        _audit(rt, request, who, doc, "cpix")
        return doc.render()

    return _xml(await run_in_threadpool(run))


@router.post("/assets/{asset_id}/cpix/export", response_class=Response)
async def export_cpix_encrypted(
    asset_id: str,
    body: ExportJson,
    request: Request,
    who: Principal = Depends(require_admin),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    """The asset's keys as CPIX 2.3, encrypted for ``certificate`` (document key RSA-OAEP,
    keys AES-256-CBC, HMAC-SHA512 over each)."""
    try:
        cert = x509.load_pem_x509_certificate(body.certificate.encode())
    except ValueError:
        raise ApiError(
            400, "invalid_certificate", "certificate is not a PEM X.509 certificate."
        ) from None

    def run() -> bytes:
        doc = _document(rt, asset_id)
        out = doc.render(cert)  # refuses a weak key before anything is logged
        _audit(rt, request, who, doc, "cpix")
        return out

    try:
        return _xml(await run_in_threadpool(run))
    except CpixError as exc:
        raise ApiError(400, exc.code, exc.message) from None


@router.put("/assets/{asset_id}/cpix")
async def import_cpix(
    asset_id: str,
    request: Request,
    _who: Principal = Depends(require_admin),
    rt: Runtime = Depends(runtime_dep),
) -> dict[str, Any]:
    """Import a key provider's CPIX document (keys in the clear; over TLS): each key
    replaces the asset's key of its track type; DRM signalling (PSSH) is kept with it. A
    protected asset is packaged again with them (``repackaging``: true; 409 while it is
    being processed); a clear one keeps them for when it gets a policy."""
    try:
        data = await read_body(request, MAX_CPIX_BYTES)
    except UploadError as exc:
        raise ApiError(413, "too_large", str(exc)) from None

    def run() -> dict[str, Any]:
        doc = CpixDocument.parse(data)
        if not doc.keys:
            raise CpixError("the document has no ContentKey")
        values = [k.value for k in doc.keys]  # each must carry its key
        types = [k.track_type for k in doc.keys]
        if len(set(types)) != len(types) or not set(types) <= TRACK_TYPES:
            raise CpixError("one key per track type (SD, HD, AUDIO or ALL, by usage rule)")
        kids = {k.kid for k in doc.keys}

        def put_keys() -> None:
            for k, value in zip(doc.keys, values, strict=True):
                rt.keys.put(asset_id, k.track_type, k.kid, value, "cpix")
            store_signals(rt.db, [s for s in doc.systems if s.kid in kids])

        repackaging = repackage_with_keys(rt, asset_id, put_keys)
        return {
            "data": {
                "asset_id": asset_id,
                "keys": [{"kid": k.kid.hex(), "track_type": k.track_type} for k in doc.keys],
                "drm_systems": sorted({s.system_id for s in doc.systems if s.kid in kids}),
                "repackaging": repackaging,
            }
        }

    try:
        return await run_in_threadpool(run)
    except ProtectError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except AssetBusy as exc:
        raise ApiError(409, exc.code, exc.message) from None
