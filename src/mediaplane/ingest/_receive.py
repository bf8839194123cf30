"""The upload service's write path: a chunk of a resumable upload, streamed into its staged
object under the upload's lock.

The body is written in 4 MiB batches, each in a thread while the next one arrives (plus
one part buffered by a part-staging writer), so memory stays flat whatever the upload's
size. Without a checksum, bytes are recorded as they become durable and kept when the
client disconnects mid-way; with one, nothing is recorded until the digest matches.
Every refusal is an :class:`~mediaplane.intake.UploadError` (the HTTP layer maps it).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import time
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

import structlog
from starlette.concurrency import run_in_threadpool

from mediaplane.intake import BodyCut, ByteLimit, UploadError, UploadTooLarge, counted

from ._staging import StagedWriter, staging_for
from ._uploads import (
    ChecksumMismatch,
    IncompleteChunk,
    UploadView,
    acquire,
    cancel_upload,
    complete,
    declare_length,
    get_upload,
    record,
    release,
)

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = ["CHECKSUMS", "BadChecksum", "append", "append_first", "parse_checksum"]

log = structlog.get_logger("mediaplane.ingest")

_WRITE_BATCH = 4 << 20
#: Seconds between recording the durable offset (and refreshing the lock) mid-write.
_RECORD_EVERY = 1.0
#: Upload-Checksum algorithms (tus checksum), as hashlib names them.
CHECKSUMS = ("sha1", "md5", "sha256", "sha512")


class BadChecksum(UploadError):
    """An Upload-Checksum we cannot check (400); ``code`` says which way it is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Decode ``Upload-Checksum: <algorithm> <base64 digest>``; None without one."""
    if header is None:
        return None
    algo, _, digest = header.strip().partition(" ")
    algo = algo.lower()
    if algo not in CHECKSUMS:
        raise BadChecksum(
            "unsupported_checksum",
            f"Checksum algorithm {algo!r} is not supported; use one of {', '.join(CHECKSUMS)}.",
        )
    try:
        expected = base64.b64decode(digest.strip(), validate=True)
    except binascii.Error:
        raise BadChecksum("invalid_checksum", "Upload-Checksum's digest is not base64.") from None
    return algo, expected


class _Lease:
    """Keeps this request's claim on the upload: before bytes are written it re-checks and
    extends the lock (at most every ``_RECORD_EVERY`` seconds), recording the durable
    offset at the same time. A request that stalled past the lock's lifetime finds the
    lock gone here and stops before it could overwrite another writer's bytes."""

    def __init__(self, rt: Runtime, view: UploadView, token: str, *, keep: bool) -> None:
        self.rt, self.view, self.token, self.keep = rt, view, token, keep
        self.recorded = view.offset
        self.last = time.monotonic()

    async def renew(self, durable: int, *, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < _RECORD_EVERY:
            return
        offset = durable if self.keep and durable != self.recorded else None
        await run_in_threadpool(record, self.rt, self.view.id, self.token, offset)
        self.last = time.monotonic()
        if offset is not None:
            self.recorded = offset


def _write_batch(writer: StagedWriter, hasher: Any, batch: list[bytes]) -> int:
    durable: int = writer.durable
    for data in batch:
        if hasher is not None:
            hasher.update(data)
        durable = writer.write(data)
    return durable


async def _stream(
    chunks: AsyncIterable[bytes], writer: StagedWriter, hasher: Any, lease: _Lease
) -> bool:
    """Write ``chunks`` with write-behind (one batch written in a thread while the next
    is received: at most two in memory); return whether the client left mid-way."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[int] | None = None
    disconnected = False
    batch: list[bytes] = []
    batched = 0
    try:
        try:
            async for chunk in chunks:
                batch.append(chunk)
                batched += len(chunk)
                if batched < _WRITE_BATCH:
                    continue
                durable = await pending if pending is not None else writer.durable
                pending = None
                await lease.renew(durable)
                pending = loop.run_in_executor(None, _write_batch, writer, hasher, batch)
                batch, batched = [], 0
        except BodyCut:
            disconnected = True
        if pending is not None:
            await pending
            pending = None
        await lease.renew(writer.durable, force=True)  # still ours before the last flush
        if batch:
            await run_in_threadpool(_write_batch, writer, hasher, batch)
    except BaseException:
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending
        raise
    return disconnected


async def _receive(
    rt: Runtime,
    view: UploadView,
    token: str,
    chunks: AsyncIterable[bytes],
    declared: str | None,
    checksum_header: str | None,
) -> UploadView:
    """Stream ``chunks`` into the staged object at ``view.offset``; record what is stored."""
    checksum = parse_checksum(checksum_header)
    # With the length deferred, the size limit is what bounds the upload.
    room = (view.length if view.length is not None else rt.settings.max_upload_bytes) - view.offset
    limit = ByteLimit(
        room,
        "The chunk runs past Upload-Length (or the size limit): {limit} bytes remain; "
        "nothing of it was kept.",
    )
    limit.declared(declared)
    hasher = hashlib.new(checksum[0]) if checksum else None
    lease = _Lease(rt, view, token, keep=hasher is None)
    staging = staging_for(rt.store)
    writer = await run_in_threadpool(staging.open, view.staged_name, view.offset)
    try:
        disconnected = await _stream(counted(chunks, limit), writer, hasher, lease)
        durable = await run_in_threadpool(writer.close)
    except UploadTooLarge:
        # A chunk past the limit leaves nothing behind: what it brought is dropped (and
        # un-recorded), what earlier requests stored stays.
        await run_in_threadpool(writer.abort)
        if lease.recorded != view.offset:
            await run_in_threadpool(record, rt, view.id, token, view.offset)
        raise
    except BaseException:
        await run_in_threadpool(writer.close)  # unrecorded bytes are dropped on next open
        raise
    if hasher is not None and checksum is not None:
        if disconnected or hasher.digest() != checksum[1]:
            await run_in_threadpool(writer.abort)
            if disconnected:
                raise IncompleteChunk("The chunk was cut off; it was discarded.")
            raise ChecksumMismatch(
                f"The chunk's {checksum[0]} digest does not match Upload-Checksum; "
                "it was discarded. Send it again.",
                offset=view.offset,
            )
    lease.keep = True
    await lease.renew(durable, force=True)
    if disconnected:
        log.info("upload.interrupted", upload_id=view.id, offset=durable)
    if durable == view.length:
        done: UploadView = await run_in_threadpool(complete, rt, view.id, token)
        return done
    current: UploadView = await run_in_threadpool(get_upload, rt, view.id)
    return current


async def append(
    rt: Runtime,
    upload_id: str,
    offset: int,
    chunks: AsyncIterable[bytes],
    *,
    length: int | None,
    declared: str | None,
    checksum: str | None,
) -> UploadView:
    """Append a chunk at ``offset`` (tus PATCH) under the upload's lock; the upload as it
    stands afterwards (an asset once its last byte is in).

    :param length: a deferred Upload-Length sent with this chunk, else None.
    :param declared: the request's Content-Length (a hint, checked early).
    :param checksum: the request's Upload-Checksum header, if any.
    """
    token, view = await run_in_threadpool(acquire, rt, upload_id, offset)
    try:
        if length is not None:
            view = await run_in_threadpool(declare_length, rt, upload_id, token, length)
        return await _receive(rt, view, token, chunks, declared, checksum)
    finally:
        await run_in_threadpool(release, rt, upload_id, token)


async def append_first(
    rt: Runtime,
    view: UploadView,
    chunks: AsyncIterable[bytes],
    *,
    declared: str | None,
    checksum: str | None,
) -> UploadView:
    """The first chunk, sent with the creation request (tus creation-with-upload). Past
    the size limit the upload is cancelled too: its client never learnt its URL."""
    token, view = await run_in_threadpool(acquire, rt, view.id, 0)
    upload_id, refused = view.id, False
    try:
        return await _receive(rt, view, token, chunks, declared, checksum)
    except UploadTooLarge:
        refused = True
        raise
    finally:
        await run_in_threadpool(release, rt, upload_id, token)
        if refused:
            with contextlib.suppress(UploadError):
                await run_in_threadpool(cancel_upload, rt, upload_id)
