"""Object store on an S3 bucket (AWS, SeaweedFS, MinIO, ...) through obstore."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn
from urllib.parse import parse_qs, urlencode, urlsplit

import obstore
import structlog
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store as _ObstoreS3

from mediaplane.config import redact_url

from ._base import (
    AREA_MARK,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    check_range,
    validate_area,
    validate_key,
    validate_prefix,
)
from ._local import open_tmp
from ._s3_multipart import (
    MIN_PART,
    Credentials,
    MultipartClient,
    MultipartError,
    Piece,
    compose,
    plan_parts,
)

if TYPE_CHECKING:
    from obstore import GetOptions, GetResult, ObjectMeta
    from obstore.store import ClientConfig, S3Config

log = structlog.get_logger("mediaplane.storage")

_URL_PARAMS = frozenset({"endpoint", "region"})
_LIST_CHUNK = 1000  # S3's own page size
_DOWNLOAD_CHUNK = 1 << 20
#: Bytes buffered per part when a composition is read back through this process.
_COMPOSE_BUFFER = 8 << 20
_COMPOSE_CONCURRENCY = 4
_DEFAULT_REGION = "us-east-1"
_AUTH_ERRORS = (PermissionDeniedError, UnauthenticatedError)
# obstore reports a missing object as the builtin FileNotFoundError (NotFoundError is legacy).
_NOT_FOUND = (FileNotFoundError, NotFoundError)


def _info(key: str, meta: ObjectMeta) -> ObjectInfo:
    etag = (meta["e_tag"] or "").removeprefix("W/").strip('"')
    if not etag:  # S3 always sends one; keep the field meaningful if a server does not
        raw = f"{meta['size']}:{meta['last_modified'].isoformat()}:{meta['version']}"
        etag = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
    return ObjectInfo(key=key, size=meta["size"], etag=etag, modified=meta["last_modified"])


def _range_options(start: int, end: int | None) -> GetOptions | None:
    if start == 0 and end is None:
        return None  # a plain GET, which also works on empty objects
    if end is None:
        return {"range": {"offset": start}}
    return {"range": (start, end)}


def _multipart_args(
    bucket: str,
    endpoint: str | None,
    region: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
) -> tuple[str | None, str, str, Credentials] | None:
    """Endpoint, bucket, region and credentials for signed multipart calls, resolved as
    obstore resolves them (arguments first, then the AWS_* variables); None without
    static credentials."""
    env = os.environ
    if access_key_id is None or secret_access_key is None:
        access_key_id = env.get("AWS_ACCESS_KEY_ID")
        secret_access_key = env.get("AWS_SECRET_ACCESS_KEY")
        token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN")
    else:
        token = None
    if not access_key_id or not secret_access_key:
        return None
    endpoint = endpoint or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT")
    region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or _DEFAULT_REGION
    return endpoint, bucket, region, Credentials(access_key_id, secret_access_key, token)


class S3Store:
    """Objects in ``bucket`` under an optional key ``prefix``.

    Credentials come from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or the rest
    of the standard AWS chain) unless given here. Each request, a streamed one
    included, must finish within obstore's client timeout (30 s by default).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        query = {k: v for k, v in (("endpoint", endpoint), ("region", region)) if v}
        self.url = f"s3://{bucket}/{prefix}" + (f"?{urlencode(query)}" if query else "")
        config: S3Config = {}
        client: ClientConfig = {}
        if endpoint:
            config["endpoint"] = endpoint
            config["virtual_hosted_style_request"] = False
            client["allow_http"] = endpoint.startswith("http://")
        if region:
            config["region"] = region
        if access_key_id is not None and secret_access_key is not None:
            config["access_key_id"] = access_key_id
            config["secret_access_key"] = secret_access_key
        self._config, self._client = config, client
        self._multipart_args = _multipart_args(
            bucket, endpoint, region, access_key_id, secret_access_key
        )
        self._multipart: MultipartClient | None = None
        self._multipart_lock = threading.Lock()
        self._areas: dict[str, S3Store] = {}
        try:
            self._store = _ObstoreS3(
                bucket, prefix=prefix or None, config=config, client_options=client
            )
        except (ObstoreError, ValueError) as exc:
            raise StorageError(f"cannot configure S3 store {self.url}: {exc}") from exc

    @classmethod
    def from_url(
        cls, url: str, *, access_key_id: str | None = None, secret_access_key: str | None = None
    ) -> S3Store:
        """Open ``s3://bucket[/prefix][?endpoint=http://host:port&region=name]``.

        Credentials come from the arguments, else from the AWS_* environment variables.
        """
        parts = urlsplit(url)
        usage = "use s3://bucket[/prefix][?endpoint=URL&region=NAME]"
        if parts.scheme != "s3" or not parts.hostname:
            raise StorageError(f"invalid S3 URL {redact_url(url)!r}; {usage}")
        if "@" in parts.netloc:
            raise StorageError(
                f"invalid S3 URL {redact_url(url)!r}: credentials do not belong in the URL; "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        params = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(params) - _URL_PARAMS
        if unknown or parts.fragment or any(len(v) != 1 for v in params.values()):
            raise StorageError(
                f"invalid S3 URL {redact_url(url)!r}: unknown or repeated options; {usage}"
            )
        store = cls(
            parts.netloc,
            parts.path.strip("/"),
            endpoint=params.get("endpoint", [None])[0],
            region=params.get("region", [None])[0],
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        store.url = url
        return store

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def _fail(self, exc: Exception, action: str, key: str) -> NoReturn:
        """Raise the storage error that stands for the obstore error ``exc``."""
        where = f"{key!r} in {self.url}"
        if isinstance(exc, _NOT_FOUND):
            raise ObjectNotFound(f"no object {where}") from exc
        if isinstance(exc, _AUTH_ERRORS):
            raise StorageError(
                f"S3 refused to {action} {where}: check AWS_ACCESS_KEY_ID, "
                f"AWS_SECRET_ACCESS_KEY and the bucket's permissions ({exc})"
            ) from exc
        raise StorageError(f"cannot {action} {where}: {exc}") from exc

    def _put(self, key: str, data: IO[bytes] | bytes) -> ObjectInfo:
        validate_key(key)
        try:
            # Bytes already in memory go in one PUT (S3 takes up to 5 GiB so); a file
            # streams as a multipart upload when it is big.
            obstore.put(
                self._store, key, data, use_multipart=False if isinstance(data, bytes) else None
            )
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "write", key)
        return self.stat(key)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Upload the local file ``path``; multipart in 5 MiB parts when it is bigger."""
        with Path(path).open("rb") as src:
            return self._put(key, src)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store ``data`` under ``key``."""
        return self._put(key, data)

    def _get(self, key: str, start: int, end: int | None) -> GetResult | None:
        """Start a GET of ``[start, end)``; None when ``start`` is at or past the end."""
        options = _range_options(start, end)
        try:
            return obstore.get(self._store, key, options=options)
        except (*_NOT_FOUND, ObstoreError) as exc:
            # S3 answers 416 to a range that starts past the end; obstore has no error
            # type for it, so decide by the object's size instead of the message.
            if options is not None and not isinstance(exc, (*_NOT_FOUND, *_AUTH_ERRORS)):
                if self.stat(key).size <= start:
                    return None
            self._fail(exc, "read", key)

    async def _get_async(self, key: str, start: int, end: int | None) -> GetResult | None:
        options = _range_options(start, end)
        try:
            return await obstore.get_async(self._store, key, options=options)
        except (*_NOT_FOUND, ObstoreError) as exc:
            if options is not None and not isinstance(exc, (*_NOT_FOUND, *_AUTH_ERRORS)):
                if (await self._stat_async(key)).size <= start:
                    return None
            self._fail(exc, "read", key)

    def get_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)``; raises :class:`ObjectNotFound`."""
        check_range(start, end)
        validate_key(key)
        if end == start:
            self.stat(key)
            return b""
        result = self._get(key, start, end)
        if result is None:
            return b""
        try:
            return bytes(result.bytes())
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "read", key)

    def download(self, key: str, path: Path) -> None:
        """Stream the object into the local file ``path``, replacing it atomically."""
        validate_key(key)
        result = self._get(key, 0, None)
        assert result is not None  # only ranged reads can come back empty
        dest = Path(path)
        tmp, out = open_tmp(dest.parent)
        try:
            with out:
                stream = result.stream(min_chunk_size=_DOWNLOAD_CHUNK)
                while True:
                    try:
                        chunk = next(stream)
                    except StopIteration:
                        break
                    except (*_NOT_FOUND, ObstoreError) as exc:
                        self._fail(exc, "download", key)
                    out.write(chunk)
            tmp.replace(dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's metadata; raises :class:`ObjectNotFound`."""
        validate_key(key)
        try:
            meta = obstore.head(self._store, key)
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "stat", key)
        return _info(key, meta)

    async def _stat_async(self, key: str) -> ObjectInfo:
        try:
            meta = await obstore.head_async(self._store, key)
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "stat", key)
        return _info(key, meta)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""
        validate_key(key)
        try:
            obstore.delete(self._store, key)
        except _NOT_FOUND:
            return
        except ObstoreError as exc:
            self._fail(exc, "delete", key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` in bulk requests; return the count."""
        validate_prefix(prefix, allow_empty=False)
        count = 0
        try:
            for batch in obstore.list(self._store, prefix, chunk_size=_LIST_CHUNK):
                paths = [meta["path"] for meta in batch]
                obstore.delete(self._store, paths)
                count += len(paths)
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "delete", prefix)
        return count

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object under ``prefix`` (``""`` or ending with ``/``)."""
        validate_prefix(prefix, allow_empty=True)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for batch in obstore.list(self._store, prefix or None, chunk_size=_LIST_CHUNK):
                for meta in batch:
                    if not prefix and meta["path"].startswith(AREA_MARK):
                        continue  # an area's objects (see area())
                    yield _info(meta["path"], meta)
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "list", prefix)

    # -- areas and composition ------------------------------------------------------------

    def area(self, name: str) -> S3Store:
        """A store under ``<prefix>/~name/`` in the same bucket (hidden from listings)."""
        validate_area(name)
        with self._multipart_lock:
            found = self._areas.get(name)
            if found is None:
                found = copy.copy(self)
                found.prefix = (
                    f"{self.prefix}/{AREA_MARK}{name}" if self.prefix else AREA_MARK + name
                )
                found.url = f"{self.url} (area {name})"
                found._areas = {}
                found._multipart_lock = threading.Lock()
                found._multipart = None
                try:
                    found._store = _ObstoreS3(
                        self.bucket,
                        prefix=found.prefix,
                        config=self._config,
                        client_options=self._client,
                    )
                except (ObstoreError, ValueError) as exc:
                    raise StorageError(f"cannot configure S3 store {found.url}: {exc}") from exc
                self._areas[name] = found
            return found

    def _relative(self, source: S3Store, key: str) -> str:
        """The path, relative to this store's prefix, of ``source``'s object ``key``."""
        validate_key(key)
        full = source._full_key(key)
        mine = f"{self.prefix}/" if self.prefix else ""
        if source.bucket != self.bucket or not full.startswith(mine):
            raise StorageError(f"{source.url} is not beside {self.url}: compose from its area")
        return full[len(mine) :]

    def compose(
        self, key: str, sources: Sequence[tuple[str, int]], *, source: ObjectStore | None = None
    ) -> ObjectInfo:
        """Concatenate the sources into ``key`` inside S3 (see :meth:`compose_parts`): no
        byte is read back, bar sources under 5 MiB that a multipart upload cannot copy.
        ``source`` is this store or one of its areas (or another store in the bucket)."""
        validate_key(key)
        origin = self if source is None else source
        if not isinstance(origin, S3Store):
            raise StorageError(f"cannot compose into {self.url} from {origin.url}")
        chain = [(self._relative(origin, name), size) for name, size in sources]
        try:
            self.compose_parts(chain, key)
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "write", key)
        return self.stat(key)

    def _compose(self, paths: Iterable[str], key: str) -> None:
        # A buffered writer does the multipart upload; reading part by part keeps a few
        # parts in memory at most (obstore.put with a Python iterator cannot read obstore).
        writer = obstore.open_writer(
            self._store, key, buffer_size=_COMPOSE_BUFFER, max_concurrency=_COMPOSE_CONCURRENCY
        )
        try:
            for path in paths:
                for chunk in obstore.get(self._store, path).stream(min_chunk_size=_DOWNLOAD_CHUNK):
                    writer.write(chunk)
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()  # cannot abort through obstore; the key is overwritten below
            self.delete(key)
            raise
        writer.close()

    def _full_key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _multipart_client(self) -> MultipartClient | None:
        """The signed-request client for server-side composition; None without static
        credentials (obstore may still find some, e.g. an instance role: read back then)."""
        if self._multipart_args is None:
            return None
        with self._multipart_lock:
            if self._multipart is None:
                self._multipart = MultipartClient(*self._multipart_args)
            return self._multipart

    def _read_piece(self, piece: Piece) -> bytes:
        try:
            return bytes(
                obstore.get(
                    self._store, piece.path, options={"range": (piece.start, piece.end)}
                ).bytes()
            )
        except (*_NOT_FOUND, ObstoreError) as exc:
            self._fail(exc, "read", piece.path)

    def compose_parts(self, chain: Sequence[tuple[str, int]], key: str) -> None:
        """Concatenate the objects ``(path, size)`` into ``key`` inside S3.

        One object is a CopyObject; a total under 5 MiB (too small for a multipart upload
        of several parts) is read back and written in one PUT; anything else is one
        multipart upload whose parts S3 copies from the sources (UploadPartCopy), bar runs
        of sources under 5 MiB, which are read back (see :func:`plan_parts`). Without
        static credentials or where the server lacks UploadPartCopy, every byte is read
        back through this process instead.
        """
        total = sum(size for _, size in chain)
        client = self._multipart_client()
        if len(chain) == 1:
            obstore.copy(self._store, chain[0][0], key)
            return
        if client is None or total < MIN_PART:
            self._compose([path for path, _ in chain], key)
            return
        try:
            compose(
                client,
                self._full_key(key),
                plan_parts(chain),
                self._read_piece,
                full_path=self._full_key,
            )
        except MultipartError as exc:
            if exc.code != "NotImplemented":
                raise
            log.warning("s3.no_upload_part_copy", store=self.url, error=str(exc))
            self._multipart_args = None
            self._compose([path for path, _ in chain], key)

    def local_path(self, key: str) -> Path | None:
        """Always None: objects are remote; stream them with :meth:`iter_range`."""
        validate_key(key)
        return None

    async def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` in chunks of at least ``chunk_size`` (bar the last)."""
        check_range(start, end)
        validate_key(key)
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        if end == start:
            await self._stat_async(key)
            return
        result = await self._get_async(key, start, end)
        if result is None:
            return
        stream = result.stream(min_chunk_size=chunk_size)
        while True:
            try:
                chunk = await stream.__anext__()
            except StopAsyncIteration:
                return
            except (*_NOT_FOUND, ObstoreError) as exc:
                self._fail(exc, "read", key)
            yield chunk
