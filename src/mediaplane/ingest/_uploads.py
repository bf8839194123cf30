"""Resumable uploads: the upload record, its per-upload lock, and completion into an asset.

The record is the truth: ``offset`` counts bytes stored durably in the object store's
staged object ``uploads/<id>``, so a restarted server resumes from it. A PATCH takes the
upload's lock with one conditional UPDATE (``lock_token`` free or ``locked_until`` past,
and the offset the client named still current), refreshes it while bytes arrive and
frees it at the end; a crashed server's lock frees itself after ``upload_lock_seconds``.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import JSON, BigInteger, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, str_enum, utcnow

from ._url import IngestError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.ingest")

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_SWEEP_BATCH = 20
#: A pessimistic speed for publishing a finished upload (S3 composes it from its parts).
_COMPOSE_BYTES_PER_S = 8 << 20


def _upload_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(24))


class UploadStatus(enum.StrEnum):
    WAITING = "waiting"
    ASSET_CREATED = "asset_created"
    ERRORED = "errored"
    CANCELLED = "cancelled"


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_upload_id)
    status: Mapped[UploadStatus] = mapped_column(
        str_enum(UploadStatus, 16), default=UploadStatus.WAITING, index=True
    )
    length: Mapped[int] = mapped_column(BigInteger)
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


class UploadError(IngestError):
    """Root of resumable-upload errors; ``status`` and ``code`` are the HTTP answer."""

    status = 400
    code = "invalid_upload"

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class UploadNotFound(UploadError):
    status, code = 404, "not_found"


class UploadGone(UploadError):
    """Expired, cancelled or failed: it can take no more bytes."""

    status, code = 410, "upload_gone"


class OffsetMismatch(UploadError):
    status, code = 409, "offset_mismatch"


class UploadLocked(UploadError):
    status, code = 423, "upload_locked"


class UploadTooLarge(UploadError):
    status, code = 413, "payload_too_large"


@dataclass(frozen=True)
class UploadView:
    """A detached snapshot of one upload row."""

    id: str
    status: UploadStatus
    length: int
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
        }


def _expired(u: Upload | UploadView, now: datetime) -> bool:
    return u.status is UploadStatus.WAITING and u.expires_at <= now and u.offset < u.length


def create_upload(
    runtime: Runtime,
    length: int,
    *,
    meta: dict[str, str | None],
    meta_header: str | None,
) -> UploadView:
    """Record a new upload of ``length`` bytes; validates the metadata the asset will use.

    :param meta: the decoded Upload-Metadata pairs (``filename``, ``title``,
        ``source_type``, ``passthrough``; other keys are kept as given).
    """
    from mediaplane.catalog import InvalidAssetInput, parse_passthrough, parse_source_type

    limit = runtime.settings.max_upload_bytes
    if length > limit:
        raise UploadTooLarge(f"The upload is {length} bytes; the limit is {limit} bytes.")
    if length <= 0:
        raise UploadError("Upload-Length must be at least 1 byte: an empty file is no video.")
    try:
        source_type = parse_source_type(meta.get("source_type"))
        passthrough = parse_passthrough(meta.get("passthrough"))
    except InvalidAssetInput as exc:
        raise UploadError(exc.message) from exc
    sweep_expired(runtime)
    now = utcnow()
    with runtime.db.session() as s:
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
        )
        upload.staged_name = f"uploads/{upload.id}"
        if upload.filename is not None:
            upload.filename = upload.filename[:255]
        s.add(upload)
        s.flush()
        view = UploadView.of(upload)
    log.info("upload.created", upload_id=view.id, length=length)
    return view


def _load(s: Session, upload_id: str) -> Upload:
    upload = s.get(Upload, upload_id)
    if upload is None:
        raise UploadNotFound(f"No upload with id {upload_id!r}.")
    return upload


def _expire(runtime: Runtime, s: Session, upload: Upload) -> None:
    upload.status = UploadStatus.ERRORED
    upload.error = "The upload expired before it was finished; start a new one."
    runtime.store.discard_staged(upload.staged_name)
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
    if view.status is UploadStatus.WAITING and view.expires_at <= utcnow() and not view.complete:
        raise UploadGone("The upload expired before it was finished; start a new one.")


def acquire(runtime: Runtime, upload_id: str, offset: int) -> tuple[str, UploadView]:
    """Take the upload's lock for a write at ``offset``; returns (lock token, snapshot).

    One conditional UPDATE decides, so two writers never both win, on SQLite or
    PostgreSQL. The loser learns why: 409 (offset moved on), 423 (locked), 410 or 404.
    """
    token = secrets.token_hex(16)
    now = utcnow()
    until = now + timedelta(seconds=runtime.settings.upload_lock_seconds)
    with runtime.db.session() as s:
        result = s.execute(
            update(Upload)
            .where(
                Upload.id == upload_id,
                Upload.status == UploadStatus.WAITING,
                Upload.offset == offset,
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
    writable(view)
    if view.status is UploadStatus.ASSET_CREATED:
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
    is renamed (local store) or composed (S3) onto ``assets/<id>/source``: no copy
    through this process's memory.
    """
    from mediaplane.catalog import CatalogError, ingest_source, parse_source_type
    from mediaplane.storage import StorageError

    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        if upload.lock_token != token or upload.offset != upload.length:
            raise UploadLocked("This request does not hold the upload's lock.")
        # Composing on S3 reads the bytes back: hold the lock for as long as that may take.
        budget = runtime.settings.upload_lock_seconds + upload.length / _COMPOSE_BYTES_PER_S
        upload.locked_until = utcnow() + timedelta(seconds=budget)
        view = UploadView.of(upload)
    try:
        asset = ingest_source(
            runtime,
            lambda key: runtime.store.commit_staged(view.staged_name, view.length, key).size,
            filename=view.filename,
            title=view.title,
            source_type=parse_source_type(view.source_type),
            passthrough=view.passthrough,
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
    log.info("upload.completed", upload_id=upload_id, asset_id=asset.id, bytes=view.length)
    return done


def _fail(runtime: Runtime, upload_id: str, message: str) -> UploadView:
    with runtime.db.session() as s:
        upload = _load(s, upload_id)
        upload.status = UploadStatus.ERRORED
        upload.error = message
        upload.lock_token = upload.locked_until = None
        return UploadView.of(upload)


def finish_if_due(runtime: Runtime, view: UploadView) -> UploadView:
    """Complete an upload whose last byte was stored but whose server died before it
    created the asset; a no-op otherwise (or while another request holds the lock)."""
    if view.status is not UploadStatus.WAITING or not view.complete:
        return view
    try:
        token, _ = acquire(runtime, view.id, view.length)
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
        if upload.status is not UploadStatus.WAITING:
            raise UploadGone(f"The upload is {upload.status}; it cannot be cancelled.")
        if not _lock_free(upload):
            raise UploadLocked("A request is writing to this upload; retry in a moment.")
        upload.status = UploadStatus.CANCELLED
        upload.expires_at = min(upload.expires_at, now)
        staged = upload.staged_name
    runtime.store.discard_staged(staged)
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
                Upload.offset < Upload.length,
                or_(Upload.lock_token.is_(None), Upload.locked_until <= now),
            )
            .limit(limit)
        ).all()
        for upload in rows:
            _expire(runtime, s, upload)
        return len(rows)
