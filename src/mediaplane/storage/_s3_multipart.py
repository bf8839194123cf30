"""Server-side composition of S3 objects: multipart upload with UploadPartCopy.

obstore (our S3 client) has no CreateMultipartUpload / UploadPartCopy /
CompleteMultipartUpload / AbortMultipartUpload calls, so this module signs those few
requests itself with AWS Signature Version 4 and sends them with httpx.

A finished staged upload is a run of part objects (``~staged/<name>/<offset>``). S3 asks
every multipart part but the last to be at least :data:`MIN_PART` (5 MiB), and
UploadPartCopy copies a range of *one* source object, so :func:`plan_parts` maps the run
onto multipart parts:

- a part object of at least 5 MiB (the staged writer's 8 MiB flushes) is copied by S3
  itself (UploadPartCopy), without its bytes passing through this process;
- a run of smaller part objects (a client that PATCHes in small chunks, or the tail of an
  interrupted PATCH) is read back and uploaded as one part (UploadPart), topped up to
  5 MiB from its neighbour: the read-back is bounded by the small parts plus one
  neighbour, not by the file;
- the last part has no minimum: a lone small tail is copied too.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import structlog

from ._base import StorageError

log = structlog.get_logger("mediaplane.storage")

#: S3's smallest part, except for the last one of an upload.
MIN_PART = 5 << 20
#: S3's most parts in one multipart upload.
MAX_PARTS = 10_000
#: Part copies run inside S3; this many are in flight at once.
COPY_CONCURRENCY = 8
#: Parts uploaded from read-back bytes hold up to two staged parts in memory each.
UPLOAD_CONCURRENCY = 2
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ALGORITHM = "AWS4-HMAC-SHA256"
_UNRESERVED = "-_.~"
_TIMEOUT = httpx.Timeout(300.0, connect=10.0)


# -- AWS Signature Version 4 ----------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """Static AWS credentials; ``session_token`` for temporary ones (STS)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)  # never in logs or tracebacks
    session_token: str | None = field(default=None, repr=False)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 key for one day, region and service (``date`` is ``YYYYMMDD``)."""
    k = _hmac(f"AWS4{secret}".encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_query(params: Mapping[str, str]) -> str:
    """``k=v`` pairs URI-encoded (RFC 3986 unreserved kept) and sorted by key."""
    pairs = sorted(
        (quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in params.items()
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], payload: str
) -> tuple[str, str]:
    """The SigV4 canonical request and its signed-headers list.

    :param path: the request path exactly as sent (already URI-encoded once, as S3 wants).
    :param headers: every header to sign; names are case-insensitive.
    :param payload: hex SHA-256 of the body, or ``UNSIGNED-PAYLOAD``.
    """
    canon = {name.lower().strip(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(canon)
    lines = "".join(f"{name}:{canon[name]}\n" for name in names)
    signed = ";".join(names)
    request = "\n".join([method, path or "/", canonical_query(query), lines, signed, payload])
    return request, signed


def sign(
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    *,
    credentials: Credentials,
    region: str,
    payload: str = EMPTY_SHA256,
    when: datetime | None = None,
    service: str = "s3",
) -> dict[str, str]:
    """Return ``headers`` plus Host, X-Amz-Date, X-Amz-Content-Sha256 and Authorization.

    :param url: the request URL; its path is used as sent and its query is signed.
    :param payload: hex SHA-256 of the body (``UNSIGNED-PAYLOAD`` is allowed over TLS).
    :param when: the signing time (tz-aware); now by default.
    """
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    host = url.host + (f":{url.port}" if url.port is not None else "")
    out = {
        **headers,
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload,
    }
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    query = {k: v for k, v in url.params.multi_items()}
    request, signed = canonical_request(
        method, url.raw_path.decode().split("?", 1)[0], query, out, payload
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = signing_key(credentials.secret_access_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"{_ALGORITHM} Credential={credentials.access_key_id}/{scope},"
        f"SignedHeaders={signed},Signature={signature}"
    )
    return out


# -- planning: staged part objects → multipart parts ---------------------------------------


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, end)`` of the object at ``path`` (relative to the store's prefix)."""

    path: str
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class PlannedPart:
    """One multipart part: copied inside S3 (one piece) or uploaded from read-back pieces."""

    pieces: tuple[Piece, ...]
    copy: bool

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)


def plan_parts(sources: Sequence[tuple[str, int]], min_part: int = MIN_PART) -> list[PlannedPart]:
    """Map source objects ``(path, size)``, to be concatenated in order, onto multipart
    parts that S3 accepts: each at least ``min_part`` bytes but the last.

    A source of ``min_part`` bytes or more is copied whole. Smaller sources are gathered
    into an uploaded part, topped up to ``min_part`` from the next source; when what that
    would leave of the next source is itself too small to copy, all of it is taken.
    """
    out: list[PlannedPart] = []
    pending: list[Piece] = []
    held = 0
    for path, size in sources:
        if size <= 0:
            continue
        start = 0
        if pending:
            take = min(size, min_part - held)
            if size - take < min_part:
                take = size
            pending.append(Piece(path, 0, take))
            held += take
            start = take
            if held >= min_part:
                out.append(PlannedPart(tuple(pending), copy=False))
                pending, held = [], 0
        if start == size:
            continue
        if size - start >= min_part:
            out.append(PlannedPart((Piece(path, start, size),), copy=True))
        else:
            pending, held = [Piece(path, start, size)], size - start
    if pending:
        # The last part has no minimum: one piece is copied, several are uploaded.
        out.append(PlannedPart(tuple(pending), copy=len(pending) == 1))
    return out


# -- the S3 calls -------------------------------------------------------------------------


class MultipartError(StorageError):
    """An S3 multipart call failed; ``code`` is S3's error code when it sent one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _find(root: ET.Element, name: str) -> str | None:
    for el in root.iter():
        if _local(el.tag) == name:
            return el.text or ""
    return None


class MultipartClient:
    """Signs and sends the multipart calls for one bucket, path-style.

    :param endpoint: ``http(s)://host[:port]``; None for AWS (``s3.<region>.amazonaws.com``).
    """

    def __init__(
        self, endpoint: str | None, bucket: str, region: str, credentials: Credentials
    ) -> None:
        self.endpoint = (endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self._http = httpx.Client(timeout=_TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MultipartClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, key: str) -> str:
        return "/" + quote(f"{self.bucket}/{key}", safe="/" + _UNRESERVED)

    def _call(
        self,
        method: str,
        key: str,
        action: str,
        params: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> httpx.Response:
        query = canonical_query(params)
        url = httpx.URL(self.endpoint + self._path(key) + (f"?{query}" if query else ""))
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        signed = sign(
            method,
            url,
            headers or {},
            credentials=self.credentials,
            region=self.region,
            payload=payload,
        )
        try:
            r = self._http.request(method, url, headers=signed, content=body)
        except httpx.HTTPError as exc:
            raise MultipartError(f"S3 {action} of {key!r} failed: {exc}") from exc
        root = _xml(r.content) if r.content else None
        # Copy and complete can fail after a 200 has been sent: the error is in the body.
        if r.status_code >= 300 or (root is not None and _local(root.tag) == "Error"):
            code = _find(root, "Code") if root is not None else None
            detail = _find(root, "Message") if root is not None else None
            raise MultipartError(
                f"S3 {action} of {key!r} failed: HTTP {r.status_code} {code or ''} "
                f"{detail or r.text[:200]}".strip(),
                code,
            )
        return r

    def _value(self, r: httpx.Response, name: str, what: str) -> str:
        root = _xml(r.content) if r.content else None
        value = _find(root, name) if root is not None else None
        if not value:
            raise MultipartError(f"S3 {what} sent no {name}")
        return value

    def create(self, key: str) -> str:
        """CreateMultipartUpload; returns the upload id."""
        r = self._call("POST", key, "CreateMultipartUpload", {"uploads": ""})
        return self._value(r, "UploadId", f"CreateMultipartUpload of {key!r}")

    def copy_part(
        self, key: str, upload_id: str, number: int, source: str, start: int, end: int
    ) -> str:
        """UploadPartCopy of bytes ``[start, end)`` of ``source``; returns the part's ETag."""
        headers = {
            "x-amz-copy-source": quote(f"/{self.bucket}/{source}", safe="/" + _UNRESERVED),
            "x-amz-copy-source-range": f"bytes={start}-{end - 1}",
        }
        params = {"partNumber": str(number), "uploadId": upload_id}
        r = self._call("PUT", key, "UploadPartCopy", params, headers)
        return self._value(r, "ETag", f"UploadPartCopy of {key!r} part {number}")

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """UploadPart of ``data``; returns the part's ETag."""
        params = {"partNumber": str(number), "uploadId": upload_id}
        r = self._call("PUT", key, "UploadPart", params, body=data)
        etag = str(r.headers.get("etag", ""))
        if not etag:
            raise MultipartError(f"S3 UploadPart of {key!r} part {number} sent no ETag")
        return etag

    def complete(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """CompleteMultipartUpload with parts 1..n in order."""
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{_escape(etag)}</ETag></Part>"
            for n, etag in enumerate(etags, start=1)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        self._call("POST", key, "CompleteMultipartUpload", {"uploadId": upload_id}, body=body)

    def abort(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload: S3 drops the parts copied or uploaded so far."""
        self._call("DELETE", key, "AbortMultipartUpload", {"uploadId": upload_id})


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def compose(
    client: MultipartClient,
    key: str,
    plan: Sequence[PlannedPart],
    read: Callable[[Piece], bytes],
    *,
    full_path: Callable[[str], str],
) -> None:
    """Build ``key`` from the planned parts in one multipart upload; abort it on any error.

    :param key: the destination's full key in the bucket.
    :param read: returns a piece's bytes (for the parts that are uploaded).
    :param full_path: maps a piece's path to its full key in the bucket.
    """
    if not plan or len(plan) > MAX_PARTS:
        raise MultipartError(f"cannot compose {key!r} from {len(plan)} parts")
    upload_id = client.create(key)
    uploads = threading.BoundedSemaphore(UPLOAD_CONCURRENCY)

    def one(number: int, part: PlannedPart) -> str:
        if part.copy:
            (piece,) = part.pieces
            return client.copy_part(
                key, upload_id, number, full_path(piece.path), piece.start, piece.end
            )
        with uploads:
            data = b"".join(read(piece) for piece in part.pieces)
            return client.upload_part(key, upload_id, number, data)

    try:
        with ThreadPoolExecutor(COPY_CONCURRENCY, thread_name_prefix="s3-compose") as pool:
            futures = [pool.submit(one, n, part) for n, part in enumerate(plan, start=1)]
            try:
                etags = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        client.complete(key, upload_id, etags)
    except BaseException as exc:
        try:
            client.abort(key, upload_id)
        except MultipartError as abort_exc:
            log.warning("s3.abort_failed", key=key, upload_id=upload_id, error=str(abort_exc))
        if isinstance(exc, httpx.HTTPError):
            raise MultipartError(f"S3 multipart upload of {key!r} failed: {exc}") from exc
        raise
    copied = sum(p.size for p in plan if p.copy)
    log.debug("s3.composed", key=key, parts=len(plan), copied=copied)
