"""Resumable uploads: the upload record, its per-upload lock, and completion into an asset.

The record is the truth: ``offset`` counts bytes stored durably in the object store's
staged object ``uploads/<id>``, so a restarted server resumes from it. A PATCH takes the
upload's lock with one conditional UPDATE (``lock_token`` free or ``locked_until`` past,
and the offset the client named still current), refreshes it while bytes arrive and
frees it at the end; a crashed server's lock frees itself after ``upload_lock_seconds``.

Concatenation (tus ``concatenation``): a *partial* upload takes bytes like any other but
never becomes an asset; a *final* upload names finished partials, claims them in the same
transaction that creates it (a partial is used once), and is published straight from
their staged objects (the local store appends them in the kernel, S3 copies them inside
the server). A final upload is created with ``offset == length``: it takes no PATCH, and
a server that dies before publishing it finishes it on the next HEAD like any upload.
``length`` is None while a client defers it (``Upload-Defer-Length``).
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, and_, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.catalog import (
    CatalogError,
    InvalidAssetInput,
    Protection,
    ingest_source,
    parse_passthrough,
    parse_source_type,
)
from mediaplane.db import Base, str_enum, utcnow
from mediaplane.errors import NotFound
from mediaplane.events import EventType, emit
from mediaplane.intake import UploadError, UploadTooLarge
from mediaplane.storage import StorageError

from ._staging import staging_for

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.ingest")

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
#: What an upload id can be; anything else a request names is no upload (and never
#: reaches a query or a staged path).
UPLOAD_ID = re.compile(r"[a-z0-9]{1,32}")
_SWEEP_BATCH = 20
#: A pessimistic speed for publishing a finished upload: S3 copies its parts into one
#: object inside the server (UploadPartCopy), but small parts, or a store without static
#: credentials, are read back through this process.
_COMPOSE_BYTES_PER_S = 8 << 20


def _upload_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(24))


class UploadStatus(enum.StrEnum):
    WAITING = "waiting"
    ASSET_CREATED = "asset_created"
    ERRORED = "errored"
    CANCELLED = "cancelled"
    #: A partial upload whose bytes went into a final upload's asset.
    CONCATENATED = "concatenated"


class UploadConcat(enum.StrEnum):
    """The upload's part in tus concatenation; None on an ordinary upload."""

    PARTIAL = "partial"
    FINAL = "final"


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_upload_id)
    status: Mapped[UploadStatus] = mapped_column(
        str_enum(UploadStatus, 16), default=UploadStatus.WAITING, index=True
    )
    #: None while the client defers it (Upload-Defer-Length).
    length: Mapped[int | None] = mapped_column(BigInteger)
    #: Bytes durably stored; "offset" is an SQL keyword, so the column is named apart.
    offset: Mapped[int] = mapped_column("upload_offset", BigInteger, default=0)
    filename: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    source_type: Mapped[str | None] = mapped_column(String(32))
    passthrough: Mapped[str | None] = mapped_column(String(255))
    #: Every Upload-Metadata pair, decoded (None for a key sent without a value).
    meta: Mapped[dict[str, Any]] = mapped_column("upload_metadata", JSON, default=dict)
    #: The raw Upload-Metadata header, echoed on HEAD as tus asks.
    meta_header: Mapped[str | None] = mapped_column(Text)
    staged_name: Mapped[str] = mapped_column(String(64))
    asset_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    lock_token: Mapped[str | None] = mapped_column(String(32))
    locked_until: Mapped[datetime | None]
    concat: Mapped[UploadConcat | None] = mapped_column(str_enum(UploadConcat, 8))
    #: A final upload's partial upload ids, in order.
    concat_parts: Mapped[list[str] | None] = mapped_column(JSON)
    #: The final upload that claimed this partial one.
    final_id: Mapped[str | None] = mapped_column(String(32))
    #: Who created it (a user id; None: the install) — only they and admins see it.
    owner_id: Mapped[str | None] = mapped_column(String(32), index=True)
    #: The channel its asset goes into (checked when the upload was created).
    channel_id: Mapped[str | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))


class UploadNotFound(UploadError, NotFound):
    status, code = 404, "not_found"


class UploadGone(UploadError):
    """Expired, cancelled or failed: it can take no more bytes."""

    status, code = 410, "upload_gone"


class OffsetMismatch(UploadError):
    status, code = 409, "offset_mismatch"


class UploadLocked(UploadError):
    status, code = 423, "upload_locked"


class ChecksumMismatch(UploadError):
    """460 (tus checksum): the chunk's digest is not the one the client sent; it was
    discarded."""

    status, code = 460, "checksum_mismatch"


class IncompleteChunk(UploadError):
    """A chunk sent with a checksum was cut off: it cannot be checked, so it was dropped."""

    status, code = 400, "incomplete_chunk"


class UploadConflict(UploadError):
    """A final upload names a partial that is unfinished or already used."""

    status, code = 409, "concat_conflict"


class UploadForbidden(UploadError):
    """PATCH against a final upload: its bytes come from its partial uploads."""

    status, code = 403, "final_upload"


@dataclass(frozen=True)
class UploadView:
    """A detached snapshot of one upload row."""

    id: str
    status: UploadStatus
    length: int | None
    offset: int
    filename: str | None
    title: str
    source_type: str | None
    passthrough: str | None
    meta_header: str | None
    staged_name: str
    asset_id: str | None
    error: str | None
    expires_at: datetime
    created_at: datetime
    concat: UploadConcat | None = None
    concat_parts: tuple[str, ...] = ()
    final_id: str | None = None
    owner_id: str | None = None
    channel_id: str | None = None
    #: The asset's protection policy (Upload-Metadata ``protection``).
    protection: str = "none"

    @classmethod
    def of(cls, u: Upload) -> UploadView:
        return cls(
            u.id,
            u.status,
            u.length,
            u.offset,
            u.filename,
            u.title,
            u.source_type,
            u.passthrough,
            u.meta_header,
            u.staged_name,
            u.asset_id,
            u.error,
            u.expires_at,
            u.created_at,
            u.concat,
            tuple(u.concat_parts or ()),
            u.final_id,
            owner_id=u.owner_id,
            channel_id=u.channel_id,
            protection=str((u.meta or {}).get("protection") or "none"),
        )

    @property
    def complete(self) -> bool:
        return self.offset == self.length

    def to_api(self) -> dict[str, Any]:
        """The public JSON shape of an upload."""
        return {
            "id": self.id,
            "status": str(self.status),
            "offset": self.offset,
            "length": self.length,
            "asset_id": self.asset_id,
            "filename": self.filename,
            "title": self.title,
            "source_type": self.source_type,
            "passthrough": self.passthrough,
            "expires_at": self.expires_at.isoformat()
            if self.status is UploadStatus.WAITING
            else None,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "concat": str(self.concat) if self.concat else None,
            "partial_uploads": list(self.concat_parts) if self.concat_parts else None,
            "final_upload_id": self.final_id,
        }


def _emit(s: Session, kind: EventType, upload: Upload) -> None:
    """Add ``kind`` about ``upload`` to the outbox in ``s``'s transaction (its API shape)."""
    emit(s, kind, "upload", upload.id, UploadView.of(upload).to_api())


def _expired(u: Upload | UploadView, now: datetime) -> bool:
    """Waiting past its expiry with bytes to come, or a finished partial nobody used."""
    if u.status is not UploadStatus.WAITING or u.expires_at > now:
        return False
    unfinished = u.length is None or u.offset < u.length
    return unfinished or (u.concat is UploadConcat.PARTIAL and u.final_id is None)


def _expirable() -> Any:
    """SQL twin of :func:`_expired` (bar the status and time tests)."""
    return or_(
        Upload.length.is_(None),
        Upload.offset < Upload.length,
        and_(Upload.concat == UploadConcat.PARTIAL, Upload.final_id.is_(None)),
    )


def _check_length(runtime: Runtime, length: int) -> None:
    limit = runtime.settings.max_upload_bytes
    if length > limit:
        raise UploadTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")
    if length <= 0:
        raise UploadError("Upload-Length must be at least 1 byte: an empty file is no video.")


def _new_upload(
    runtime: Runtime,
    length: int | None,
    meta: dict[str, str | None],
    meta_header: str | None,
    owner: tuple[str | None, str | None] = (None, None),
) -> Upload:
    """An unsaved upload row; validates the metadata the asset will use."""
    try:
        source_type = parse_source_type(meta.get("source_type"))
        passthrough = parse_passthrough(meta.get("passthrough"))
    except InvalidAssetInput as exc:
        raise UploadError(exc.message) from exc
    try:
        Protection(meta.get("protection") or "none")
    except ValueError:
        choices = ", ".join(p.value for p in Protection)
        raise UploadError(f"protection must be one of {choices}.") from None
    now = utcnow()
    upload = Upload(
        id=_upload_id(),
        status=UploadStatus.WAITING,
        length=length,
        offset=0,
        filename=(meta.get("filename") or None),
        title=(meta.get("title") or "")[:500],
        source_type=str(source_type),
        passthrough=passthrough,
        meta=meta,
        meta_header=meta_header,
        expires_at=now + timedelta(seconds=runtime.settings.upload_expiry_seconds),
        created_at=now,
        owner_id=owner[0],
        channel_id=owner[1],
    )
    upload.staged_name = f"uploads/{upload.id}"
    if upload.filename is not None:
        upload.filename = upload.filename[:255]
    return upload


def create_upload(
    runtime: Runtime,
    length: int | None,
    *,
    meta: dict[str, str | None],
    meta_header: str | None,
    partial: bool = False,
    owner: tuple[str | None, str | None] = (None, None),
) -> UploadView:
    """Record a new upload of ``length`` bytes; validates the metadata the asset will use.

    :param length: bytes to come; None when the client defers it to a later PATCH.
    :param meta: the decoded Upload-Metadata pairs (``filename``, ``title``,
        ``source_type``, ``passthrough``, ``protection``; other keys are kept as given).
    :param partial: a tus partial upload: it becomes part of a final upload, not an asset.
    :param owner: (user id, channel id): who may see the upload, and where its asset goes.
    """
    if length is not None:
        _check_length(runtime, length)
    upload = _new_upload(runtime, length, meta, meta_header, owner)
    if partial:
        upload.concat = UploadConcat.PARTIAL
    sweep_expired(runtime)
    with runtime.db.session() as s:
        s.add(upload)
        s.flush()
        view = UploadView.of(upload)
        _emit(s, EventType.UPLOAD_CREATED, upload)
    log.info("upload.created", upload_id=view.id, length=length, concat=str(upload.concat))
    return view


def _unknown_partial(upload_id: str) -> UploadNotFound:
    return UploadNotFound(f"Partial upload {upload_id!r} does not exist.")


def _partial_refusal(upload: Upload, upload_id: str, now: datetime) -> UploadError | None:
    """Why the partial upload ``upload_id`` cannot go into a final upload now; None when it
    can (the Python twin of the claiming UPDATE in :func:`create_final`)."""
    if upload.concat is not UploadConcat.PARTIAL:
        return UploadError(
            f"Upload {upload_id!r} is not a partial upload; create each part with "
            "Upload-Concat: partial."
        )
    if upload.final_id is not None or upload.status is UploadStatus.CONCATENATED:
        return UploadConflict(
            f"Partial upload {upload_id!r} is already part of final upload "
            f"{upload.final_id!r}; a partial upload can be used once."
        )
    if upload.status is UploadStatus.CANCELLED:
        return UploadGone(f"Partial upload {upload_id!r} was cancelled.")
    if upload.status is not UploadStatus.WAITING or _expired(upload, now):
        return UploadGone(
            f"Partial upload {upload_id!r} expired or failed: {upload.error or 'upload it again'}."
        )
    if upload.length is None or upload.offset != upload.length:
        held = f"{upload.offset} of {upload.length if upload.length is not None else '?'}"
        return UploadConflict(
            f"Partial upload {upload_id!r} is not finished ({held} bytes); finish it first."
        )
    if not _lock_free(upload):
        return UploadLocked(f"Partial upload {upload_id!r} is being written to; retry in a moment.")
    return None


def create_final(
    runtime: Runtime,
    partial_ids: list[str],
    *,
    meta: dict[str, str | None],
    meta_header: str | None,
    owner: tuple[str | None, str | None] = (None, None),
) -> tuple[str | None, UploadView]:
    """Record a final upload made of the finished ``partial_ids``, in order, and claim
    them, in one transaction; returns (lock token, snapshot) for :func:`complete`.

    The same request again (a client retrying after a lost response, or after the server
    died while publishing) gets the final upload it made: (None, its snapshot).
    Refusals: 400 (not a partial, named twice, none named), 404 (unknown), 409 (not
    finished, or already in another final upload), 410 (cancelled, expired), 413.
    """
    if not partial_ids:
        raise UploadError("Upload-Concat: final names no partial uploads.")
    twice = sorted({i for i in partial_ids if partial_ids.count(i) > 1})
    if twice:
        raise UploadError(f"Upload-Concat: final names {', '.join(twice)} more than once.")
    upload = _new_upload(runtime, None, meta, meta_header, owner)
    token = secrets.token_hex(16)
    now = utcnow()
    with runtime.db.session() as s:
        rows = {u.id: u for u in s.scalars(select(Upload).where(Upload.id.in_(partial_ids)))}
        for pid in partial_ids:  # another user's partial upload does not exist for this one
            if pid not in rows or (owner[0] is not None and rows[pid].owner_id != owner[0]):
                raise _unknown_partial(pid)
        owners = {rows[pid].final_id for pid in partial_ids}
        if len(owners) == 1 and None not in owners:
            earlier = s.get(Upload, owners.pop())
            if earlier is not None and earlier.concat_parts == partial_ids:
                return None, UploadView.of(earlier)
        length = sum(rows[pid].length or 0 for pid in partial_ids)
        upload.concat = UploadConcat.FINAL
        upload.concat_parts = list(partial_ids)
        upload.length = upload.offset = length
        upload.lock_token = token
        upload.locked_until = now + _publish_budget(runtime, length)
        # One conditional UPDATE claims them all: two finals never share a partial.
        claimed = s.execute(
            update(Upload)
            .where(
                Upload.id.in_(partial_ids),
                Upload.concat == UploadConcat.PARTIAL,
                Upload.status == UploadStatus.WAITING,
                Upload.final_id.is_(None),
                Upload.length.is_not(None),
                Upload.offset == Upload.length,
                Upload.expires_at > now,
                or_(Upload.lock_token.is_(None), Upload.locked_until <= now),
            )
            .values(final_id=upload.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != len(partial_ids):
            s.rollback()
            s.expire_all()
            for pid in partial_ids:
                row = s.get(Upload, pid)
                if row is None:
                    raise _unknown_partial(pid)
                refusal = _partial_refusal(row, pid, now)
                if refusal is not None:
                    raise refusal
            raise UploadConflict("The partial uploads changed meanwhile; retry.")
        _check_length(runtime, length)
        s.add(upload)
        s.flush()
        view = UploadView.of(upload)
        _emit(s, EventType.UPLOAD_CREATED, upload)
    log.info("upload.final_created", upload_id=view.id, parts=len(partial_ids), length=length)
    return token, view


def _load(s: Session, upload_id: str) -> Upload:
    upload = s.get(Upload, upload_id) if UPLOAD_ID.fullmatch(upload_id) else None
    if upload is None:
        raise UploadNotFound(f"No upload with id {upload_id[:40]!r}.")
    return upload


def _expire(runtime: Runtime, s: Session, upload: Upload) -> None:
    upload.status = UploadStatus.ERRORED
    if upload.length is not None and upload.offset == upload.length:
        upload.error = "The partial upload expired before a final upload used it."
    else:
        upload.error = "The upload expired before it was finished; start a new one."
    _emit(s, EventType.UPLOAD_ERRORED, upload)
    staging_for(runtime.store).discard(upload.staged_name)
    log.info("upload.expired", upload_id=upload.id, offset=upload.offset)


def get_upload(runtime: Runtime, upload_id: str) -> UploadView:
    """The upload's current state (an expired one is marked errored on the way)."""
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        if _expired(upload, utcnow()) and _lock_free(upload):
            _expire(runtime, s, upload)
        return UploadView.of(upload)


def _lock_free(upload: Upload) -> bool:
    return upload.lock_token is None or (
        upload.locked_until is not None and upload.locked_until <= utcnow()
    )


def writable(view: UploadView) -> None:
    """Raise :class:`UploadGone` unless the upload can still take bytes."""
    if view.status is UploadStatus.CANCELLED:
        raise UploadGone("The upload was cancelled.")
    if view.status is UploadStatus.ERRORED:
        raise UploadGone(view.error or "The upload failed.")
    if _expired(view, utcnow()):
        if view.complete:
            raise UploadGone("The partial upload expired before a final upload used it.")
        raise UploadGone("The upload expired before it was finished; start a new one.")


def acquire(
    runtime: Runtime, upload_id: str, offset: int, *, final: bool = False
) -> tuple[str, UploadView]:
    """Take the upload's lock for a write at ``offset``; returns (lock token, snapshot).

    One conditional UPDATE decides, so two writers never both win, on SQLite or
    PostgreSQL. The loser learns why: 409 (offset moved on), 423 (locked), 410 or 404,
    403 for a final upload (it takes no bytes) unless ``final`` (to publish it).
    """
    if not UPLOAD_ID.fullmatch(upload_id):  # never a NUL or 300 characters into SQL
        raise UploadNotFound(f"No upload with id {upload_id[:40]!r}.")
    token = secrets.token_hex(16)
    now = utcnow()
    until = now + timedelta(seconds=runtime.settings.upload_lock_seconds)
    kind = (
        Upload.concat == UploadConcat.FINAL
        if final
        else or_(Upload.concat.is_(None), Upload.concat != UploadConcat.FINAL)
    )
    with runtime.db.session() as s:
        result = s.execute(
            update(Upload)
            .where(
                Upload.id == upload_id,
                Upload.status == UploadStatus.WAITING,
                Upload.offset == offset,
                kind,
                or_(Upload.expires_at > now, Upload.offset == Upload.length),
                or_(Upload.lock_token.is_(None), Upload.locked_until <= now),
            )
            .values(lock_token=token, locked_until=until)
            .execution_options(synchronize_session=False)
        )
        won = getattr(result, "rowcount", 0) == 1
    view = get_upload(runtime, upload_id)
    if won:
        return token, view
    if view.concat is UploadConcat.FINAL and not final:
        raise UploadForbidden(
            "A final upload takes no PATCH: its bytes come from its partial uploads."
        )
    writable(view)
    if view.status in (UploadStatus.ASSET_CREATED, UploadStatus.CONCATENATED):
        raise OffsetMismatch("The upload is complete; it takes no more bytes.", offset=view.offset)
    if view.offset != offset:
        raise OffsetMismatch(
            f"Upload-Offset {offset} does not match the stored offset {view.offset}; "
            "send a HEAD request and resume from there.",
            offset=view.offset,
        )
    raise UploadLocked(
        "Another request is writing to this upload; retry in a moment.", offset=view.offset
    )


def record(runtime: Runtime, upload_id: str, token: str, offset: int | None) -> None:
    """Store the durable ``offset`` (None: keep it) and extend the lock and the expiry."""
    now = utcnow()
    values: dict[str, Any] = {
        "locked_until": now + timedelta(seconds=runtime.settings.upload_lock_seconds),
        "expires_at": now + timedelta(seconds=runtime.settings.upload_expiry_seconds),
        "updated_at": now,
    }
    if offset is not None:
        values["offset"] = offset
    with runtime.db.session() as s:
        result = s.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.lock_token == token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise UploadLocked("This request lost the upload's lock (it stalled too long).")


def declare_length(runtime: Runtime, upload_id: str, token: str, length: int) -> UploadView:
    """Set a deferred ``length`` (tus Upload-Defer-Length) under the caller's lock.

    Sending the length an upload already has is allowed; a different one is refused.
    """
    _check_length(runtime, length)
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        if upload.lock_token != token:
            raise UploadLocked("This request does not hold the upload's lock.")
        if upload.length is not None and upload.length != length:
            raise UploadError(
                f"Upload-Length is {upload.length} already; it cannot change to {length}."
            )
        if length < upload.offset:
            raise UploadError(
                f"Upload-Length {length} is less than the {upload.offset} bytes already stored."
            )
        upload.length = length
        return UploadView.of(upload)


def release(runtime: Runtime, upload_id: str, token: str) -> None:
    """Free the lock if this token still holds it."""
    with runtime.db.session() as s:
        s.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.lock_token == token)
            .values(lock_token=None, locked_until=None)
            .execution_options(synchronize_session=False)
        )


def complete(runtime: Runtime, upload_id: str, token: str) -> UploadView:
    """Publish the finished bytes as a new asset's source and queue its processing.

    The caller holds the lock and has recorded ``offset == length``. The staged object
    is renamed (local store) or composed inside S3 (multipart UploadPartCopy) onto
    ``assets/<id>/source``: no copy through this process's memory.
    """
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        if upload.lock_token != token or upload.offset != upload.length:
            raise UploadLocked("This request does not hold the upload's lock.")
        if upload.concat is UploadConcat.PARTIAL:
            return UploadView.of(upload)  # it waits for a final upload, not an asset
        length = upload.length or 0
        # Composing on S3 copies (or reads back) every part: hold the lock meanwhile.
        upload.locked_until = utcnow() + _publish_budget(runtime, length)
        view = UploadView.of(upload)
        sources = [(view.staged_name, length)]
        if view.concat is UploadConcat.FINAL:
            parts = {
                u.id: u for u in s.scalars(select(Upload).where(Upload.id.in_(view.concat_parts)))
            }
            sources = [(parts[i].staged_name, parts[i].length or 0) for i in view.concat_parts]
    try:
        asset = ingest_source(
            runtime,
            lambda key: staging_for(runtime.store).commit_concat(sources, key).size,
            filename=view.filename,
            title=view.title,
            source_type=parse_source_type(view.source_type),
            passthrough=view.passthrough,
            channel_id=view.channel_id,
            protection=Protection(view.protection),
        )
    except (CatalogError, StorageError) as exc:
        log.warning("upload.failed", upload_id=upload_id, error=str(exc))
        return _fail(runtime, upload_id, f"The upload could not become an asset: {exc}")
    except Exception:
        # The source may be gone with the failed asset: say so rather than look waiting.
        log.exception("upload.failed", upload_id=upload_id)
        _fail(runtime, upload_id, "The upload could not become an asset (a server error).")
        raise
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        upload.status = UploadStatus.ASSET_CREATED
        upload.asset_id = asset.id
        upload.lock_token = upload.locked_until = None
        done = UploadView.of(upload)
        _emit(s, EventType.UPLOAD_ASSET_CREATED, upload)
        if view.concat_parts:
            s.execute(
                update(Upload)
                .where(Upload.id.in_(view.concat_parts), Upload.final_id == upload_id)
                .values(status=UploadStatus.CONCATENATED, asset_id=asset.id, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    log.info("upload.completed", upload_id=upload_id, asset_id=asset.id, bytes=view.length)
    return done


def _publish_budget(runtime: Runtime, length: int) -> timedelta:
    """How long publishing ``length`` bytes may hold the upload's lock."""
    return timedelta(seconds=runtime.settings.upload_lock_seconds + length / _COMPOSE_BYTES_PER_S)


def _fail(runtime: Runtime, upload_id: str, message: str) -> UploadView:
    """Mark the upload errored; a final upload takes its partial uploads down with it
    (they are claimed, so nothing else could use or expire them)."""
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        upload.status = UploadStatus.ERRORED
        upload.error = message
        upload.lock_token = upload.locked_until = None
        parts = list(
            s.scalars(
                select(Upload).where(
                    Upload.id.in_(upload.concat_parts or []), Upload.final_id == upload_id
                )
            )
        )
        for part in parts:
            part.status = UploadStatus.ERRORED
            part.error = f"Its final upload {upload_id!r} failed: {message}"
        staged = [part.staged_name for part in parts]
        view = UploadView.of(upload)
        _emit(s, EventType.UPLOAD_ERRORED, upload)
    for name in staged:
        staging_for(runtime.store).discard(name)
    return view


def finish_if_due(runtime: Runtime, view: UploadView) -> UploadView:
    """Complete an upload whose last byte was stored but whose server died before it
    created the asset (a final upload too); a no-op otherwise (or while another request
    holds the lock)."""
    if view.status is not UploadStatus.WAITING or not view.complete or view.length is None:
        return view
    if view.concat is UploadConcat.PARTIAL:
        return view
    try:
        token, _ = acquire(runtime, view.id, view.length, final=view.concat is UploadConcat.FINAL)
    except UploadError:
        return view
    try:
        return complete(runtime, view.id, token)
    finally:
        release(runtime, view.id, token)


def cancel_upload(runtime: Runtime, upload_id: str) -> None:
    """Terminate a waiting upload and delete its bytes (tus termination)."""
    now = utcnow()
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        if upload.final_id is not None:
            raise UploadConflict(
                f"The partial upload belongs to final upload {upload.final_id!r}; "
                "it cannot be cancelled."
            )
        if upload.status is not UploadStatus.WAITING:
            raise UploadGone(f"The upload is {upload.status}; it cannot be cancelled.")
        if upload.concat is UploadConcat.FINAL:
            raise UploadConflict("The final upload is being published; it cannot be cancelled.")
        if not _lock_free(upload):
            raise UploadLocked("A request is writing to this upload; retry in a moment.")
        upload.status = UploadStatus.CANCELLED
        upload.expires_at = min(upload.expires_at, now)
        staged = upload.staged_name
        _emit(s, EventType.UPLOAD_CANCELLED, upload)
    staging_for(runtime.store).discard(staged)
    log.info("upload.cancelled", upload_id=upload_id)


def sweep_expired(runtime: Runtime, limit: int = _SWEEP_BATCH) -> int:
    """Mark up to ``limit`` expired, unlocked uploads errored and delete their bytes."""
    now = utcnow()
    with runtime.db.session() as s:
        rows = s.scalars(
            select(Upload)
            .where(
                Upload.status == UploadStatus.WAITING,
                Upload.expires_at <= now,
                _expirable(),
                or_(Upload.lock_token.is_(None), Upload.locked_until <= now),
            )
            .limit(limit)
        ).all()
        for upload in rows:
            _expire(runtime, s, upload)
        return len(rows)
