"""tus 1.0.0 resumable uploads on /api/v1/uploads.

Extensions: creation, creation-with-upload, creation-defer-length (``Upload-Defer-Length:
1``, the length sent on a later PATCH), termination, checksum (sha1, md5, sha256, sha512;
a mismatch is 460 and the chunk is discarded), expiration, concatenation (``Upload-Concat:
partial`` uploads, then ``final;<url> <url>``: the final upload is published from the
partials' stored bytes without a PATCH, and only it becomes an asset). This module parses
and answers HTTP; the upload service (:mod:`._uploads`, :mod:`._receive`) does the work,
streaming each body into the upload's staged object (:mod:`._staging`). Status codes:
409 offset mismatch, 410 expired or cancelled, 412 wrong Tus-Resumable, 413 too large,
415 wrong Content-Type, 423 another request is writing, 460 checksum mismatch; for
concatenation 400 (not a partial upload of this server, named twice), 403 (PATCH on a
final upload), 404 (unknown partial), 409 (partial unfinished or already used).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable
from datetime import UTC
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import require_admin
from mediaplane.http import ApiError, runtime_dep
from mediaplane.intake import UploadError, request_stream
from mediaplane.runtime import Runtime

from ._receive import CHECKSUMS, append, append_first
from ._uploads import (
    UPLOAD_ID,
    UploadConcat,
    UploadStatus,
    UploadView,
    cancel_upload,
    complete,
    create_final,
    create_upload,
    finish_if_due,
    get_upload,
    release,
    writable,
)

log = structlog.get_logger("mediaplane.ingest")

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,"
    "concatenation"
)
OCTETS = "application/offset+octet-stream"
_MAX_METADATA = 8192
_MAX_CONCAT = 64 * 1024
#: How many partial uploads one final upload may name.
MAX_PARTIALS = 1000

router = APIRouter(prefix="/api/v1", tags=["uploads"])
_auth = [Depends(require_admin)]


def _err(status: int, code: str, message: str, **headers: str) -> ApiError:
    return ApiError(status, code, message, {"Tus-Resumable": TUS_VERSION, **headers})


def _from(exc: UploadError) -> ApiError:
    headers = dict(exc.headers)
    if exc.offset is not None:
        headers["Upload-Offset"] = str(exc.offset)
    return _err(exc.status, exc.code, exc.message, **headers)


def _require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise _err(
            412,
            "unsupported_tus_version",
            f"Send Tus-Resumable: {TUS_VERSION} (the only version this server speaks).",
            **{"Tus-Version": TUS_VERSION},
        )


def _int_header(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise _err(400, "missing_header", f"The {name} header is required.")
    if not raw.isdigit():
        raise _err(400, "invalid_header", f"{name} must be a non-negative integer.")
    return int(raw)


def parse_metadata(header: str | None) -> dict[str, str | None]:
    """Decode ``Upload-Metadata``: comma-separated ``key base64(value)`` pairs."""
    if not header:
        return {}
    if len(header) > _MAX_METADATA:
        raise _err(400, "invalid_metadata", "Upload-Metadata is too long.")
    out: dict[str, str | None] = {}
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in out:
            raise _err(400, "invalid_metadata", f"Upload-Metadata pair {pair.strip()!r} is bad.")
        if len(parts) == 1:
            out[key] = None
            continue
        try:
            out[key] = base64.b64decode(parts[1], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _err(
                400, "invalid_metadata", f"Upload-Metadata value of {key!r} is not base64 UTF-8."
            ) from None
    return out


def parse_concat(
    header: str | None, prefixes: tuple[str, ...], hosts: tuple[str, ...]
) -> tuple[UploadConcat, list[str]] | None:
    """Decode ``Upload-Concat``: ``partial``, or ``final;`` and the partial uploads' URLs.

    :param prefixes: URL paths this server's uploads live under (``/api/v1/uploads``
        behind each public base path); a URL elsewhere is not one of ours.
    :param hosts: ``host[:port]`` names of this server; a URL naming another is foreign.
    :returns: None without the header; else the kind and, for ``final``, the upload ids.
    """
    if header is None:
        return None
    value = header.strip()
    if value == "partial":
        return UploadConcat.PARTIAL, []
    kind, sep, rest = value.partition(";")
    if kind.strip() != "final" or not sep:
        raise _err(
            400, "invalid_concat", "Upload-Concat must be 'partial' or 'final;<url> <url> ...'."
        )
    if len(value) > _MAX_CONCAT:
        raise _err(400, "invalid_concat", "Upload-Concat is too long.")
    urls = rest.split()
    if not urls:
        raise _err(400, "invalid_concat", "Upload-Concat: final names no partial uploads.")
    if len(urls) > MAX_PARTIALS:
        raise _err(
            400,
            "invalid_concat",
            f"Upload-Concat: final can name at most {MAX_PARTIALS} partial uploads.",
        )
    ids: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        foreign = (parts.scheme or parts.netloc) and (
            parts.scheme not in ("http", "https") or parts.netloc.lower() not in hosts
        )
        head, _, upload_id = parts.path.rstrip("/").rpartition("/")
        if (
            foreign
            or parts.query
            or parts.fragment
            or head not in prefixes
            or not UPLOAD_ID.fullmatch(upload_id)
        ):
            raise _err(
                400,
                "invalid_concat",
                f"{url!r} is not an upload URL of this server; name partial uploads by the "
                "Location their creation returned.",
            )
        ids.append(upload_id)
    return UploadConcat.FINAL, ids


def _our_urls(request: Request, rt: Runtime) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The upload path prefixes and host names this server answers for."""
    bases = [str(request.base_url)]
    if rt.settings.public_url:
        bases.append(rt.settings.public_url)
    prefixes = tuple({f"{urlsplit(b).path.rstrip('/')}/api/v1/uploads" for b in bases})
    hosts = {urlsplit(b).netloc.lower() for b in bases}
    if request.headers.get("host"):
        hosts.add(request.headers["host"].lower())
    return prefixes, tuple(hosts)


def _concat_header(request: Request, rt: Runtime, view: UploadView) -> str | None:
    if view.concat is UploadConcat.PARTIAL:
        return "partial"
    if view.concat is UploadConcat.FINAL:
        urls = " ".join(_location(request, rt, pid) for pid in view.concat_parts)
        return f"final;{urls}"
    return None


def _http_date(view: UploadView) -> str:
    # PostgreSQL hands back a fixed +00:00 zone; the HTTP date wants datetime.UTC itself.
    return format_datetime(view.expires_at.astimezone(UTC), usegmt=True)


def _headers(view: UploadView) -> dict[str, str]:
    headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
    # A final upload has an offset only once it is published (tus concatenation).
    if view.concat is not UploadConcat.FINAL or view.status is UploadStatus.ASSET_CREATED:
        headers["Upload-Offset"] = str(view.offset)
    if view.status is UploadStatus.WAITING and (
        not view.complete or (view.concat is UploadConcat.PARTIAL and view.final_id is None)
    ):
        headers["Upload-Expires"] = _http_date(view)
    return headers


def _location(request: Request, rt: Runtime, upload_id: str) -> str:
    base = rt.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/api/v1/uploads/{upload_id}"


async def _call(fn: Any, *args: Any) -> Any:
    try:
        return await run_in_threadpool(fn, *args)
    except UploadError as exc:
        raise _from(exc) from exc


async def _append(awaitable: Awaitable[UploadView]) -> UploadView:
    try:
        return await awaitable
    except UploadError as exc:
        raise _from(exc) from None


async def _patch(request: Request, rt: Runtime, upload_id: str) -> Response:
    _require_tus(request)
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != OCTETS:
        raise _err(415, "unsupported_media_type", f"PATCH bodies must be {OCTETS}.")
    offset = _int_header(request, "upload-offset")
    length = _int_header(request, "upload-length") if "upload-length" in request.headers else None
    view = await _append(
        append(
            rt,
            upload_id,
            offset,
            request_stream(request),
            length=length,
            declared=request.headers.get("content-length"),
            checksum=request.headers.get("upload-checksum"),
        )
    )
    return Response(status_code=204, headers=_headers(view))


async def _delete(request: Request, rt: Runtime, upload_id: str) -> Response:
    _require_tus(request)
    await _call(cancel_upload, rt, upload_id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})


def _options_headers() -> dict[str, str]:
    return {
        "Tus-Resumable": TUS_VERSION,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": EXTENSIONS,
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    }


@router.options("/uploads")
@router.options("/uploads/{upload_id}")
def options(rt: Runtime = Depends(runtime_dep)) -> Response:
    """tus discovery: versions, extensions, the size limit and checksum algorithms."""
    headers = {**_options_headers(), "Tus-Max-Size": str(rt.settings.max_upload_bytes)}
    return Response(status_code=204, headers=headers)


@router.post("/uploads", status_code=201, dependencies=_auth)
async def create(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """tus creation (and creation-with-upload when the body is an octet stream)."""
    _require_tus(request)
    concat = parse_concat(request.headers.get("upload-concat"), *_our_urls(request, rt))
    header = request.headers.get("upload-metadata")
    meta = parse_metadata(header)
    with_body = request.headers.get("content-type", "").split(";", 1)[0].strip() == OCTETS
    if concat is not None and concat[0] is UploadConcat.FINAL:
        if "upload-length" in request.headers or "upload-defer-length" in request.headers:
            raise _err(
                400,
                "invalid_concat",
                "A final upload takes no Upload-Length: it is the sum of its partial uploads.",
            )
        if with_body and request.headers.get("content-length", "1") != "0":
            raise _err(400, "invalid_concat", "A final upload takes no body.")
        return await _create_final(request, rt, concat[1], meta, header)
    length = _length(request, rt)
    view: UploadView = await _call(
        functools.partial(create_upload, meta=meta, meta_header=header, partial=concat is not None),
        rt,
        length,
    )
    headers = {
        "Location": _location(request, rt, view.id),
        "Tus-Resumable": TUS_VERSION,
        "Upload-Expires": _http_date(view),
    }
    if with_body and request.headers.get("content-length", "1") != "0":
        view = await _append(
            append_first(
                rt,
                view,
                request_stream(request),
                declared=request.headers.get("content-length"),
                checksum=request.headers.get("upload-checksum"),
            )
        )
        headers.update(_headers(view))
    return Response(status_code=201, headers=headers)


def _length(request: Request, rt: Runtime) -> int | None:
    """Upload-Length, or None with ``Upload-Defer-Length: 1``; exactly one of them."""
    deferred = request.headers.get("upload-defer-length")
    if deferred is not None:
        if deferred.strip() != "1":
            raise _err(400, "invalid_header", "Upload-Defer-Length must be 1.")
        if "upload-length" in request.headers:
            raise _err(
                400, "invalid_header", "Send Upload-Length or Upload-Defer-Length, not both."
            )
        return None
    length = _int_header(request, "upload-length")
    if length > rt.settings.max_upload_bytes:
        raise _err(
            413,
            "payload_too_large",
            f"The upload is {length} bytes; Tus-Max-Size is {rt.settings.max_upload_bytes}.",
        )
    return length


async def _create_final(
    request: Request,
    rt: Runtime,
    partial_ids: list[str],
    meta: dict[str, str | None],
    header: str | None,
) -> Response:
    """Create the final upload, claim its partials and publish it as an asset."""
    token, view = await _call(
        functools.partial(create_final, meta=meta, meta_header=header), rt, partial_ids
    )
    if token is None:  # a retry: finish the earlier final upload if it is due
        view = await _call(finish_if_due, rt, view)
    else:
        try:
            view = await _call(complete, rt, view.id, token)
        finally:
            await run_in_threadpool(release, rt, view.id, token)
    location = _location(request, rt, view.id)
    if view.status is UploadStatus.ERRORED:
        # The partials were valid and finished: what failed is this server's store.
        raise _err(
            500,
            "concat_failed",
            view.error or "The final upload could not be published.",
            Location=location,
        )
    headers = {
        "Location": location,
        "Tus-Resumable": TUS_VERSION,
        **_headers(view),
    }
    return Response(status_code=201, headers=headers)


@router.head("/uploads/{upload_id}", dependencies=_auth)
async def head(upload_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """tus: the stored offset to resume from."""
    _require_tus(request)
    view: UploadView = await _call(get_upload, rt, upload_id)
    view = await _call(finish_if_due, rt, view)
    try:
        writable(view)
    except UploadError as exc:
        raise _from(exc) from exc
    headers = _headers(view)
    if view.length is not None:
        headers["Upload-Length"] = str(view.length)
    else:
        headers["Upload-Defer-Length"] = "1"
    concat = _concat_header(request, rt, view)
    if concat is not None:
        headers["Upload-Concat"] = concat
    if view.meta_header:
        headers["Upload-Metadata"] = view.meta_header
    return Response(status_code=200, headers=headers)


@router.get("/uploads/{upload_id}", dependencies=_auth)
async def get(upload_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """The upload's status as JSON: waiting, asset_created, errored or cancelled."""
    view: UploadView = await _call(get_upload, rt, upload_id)
    view = await _call(finish_if_due, rt, view)
    return {"data": view.to_api()}


@router.patch("/uploads/{upload_id}", dependencies=_auth)
async def patch(upload_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """tus core: append a chunk at Upload-Offset."""
    return await _patch(request, rt, upload_id)


@router.delete("/uploads/{upload_id}", dependencies=_auth)
async def delete(upload_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """tus termination: cancel the upload and delete its bytes."""
    return await _delete(request, rt, upload_id)


@router.post("/uploads/{upload_id}", dependencies=_auth)
async def override(
    upload_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """X-HTTP-Method-Override: PATCH or DELETE, for clients that cannot send them."""
    method = request.headers.get("x-http-method-override", "").upper()
    if method == "PATCH":
        return await _patch(request, rt, upload_id)
    if method == "DELETE":
        return await _delete(request, rt, upload_id)
    raise _err(405, "method_not_allowed", "POST an upload with X-HTTP-Method-Override.")
