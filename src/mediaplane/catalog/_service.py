from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import ColumnElement, and_, false, func, or_, select, true, update

from mediaplane.accounts import (
    AccessRule,
    ChannelRole,
    Principal,
    Role,
    Visibility,
    member_channel_ids,
    role_in,
)
from mediaplane.config import SourceType
from mediaplane.db import utcnow
from mediaplane.errors import Forbidden, NotFound
from mediaplane.events import EventType, emit
from mediaplane.jobs import Job, JobState, create_job, dispatch
from mediaplane.media import Presentation

from ._models import (
    Asset,
    AssetStatus,
    FingerprintStatus,
    ModerationStatus,
    PlaybackId,
    PlaybackPolicy,
    Protection,
    new_id,
)
from ._payloads import EncodeChunk, FingerprintAudio, ImportUrl, ProcessAsset, RepackageAsset

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime

    from ._rights import Rights

log = structlog.get_logger("mediaplane.catalog")


class CatalogError(Exception):
    """Root of catalog errors."""


class AssetBusy(CatalogError):
    """The asset cannot take this change now (409 ``asset_busy``); the message says when."""

    code = "asset_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AssetNotFound(CatalogError, NotFound):
    """No asset (or playback id) by that id (404 ``not_found``)."""


def clean_filename(name: str | None) -> str | None:
    """The base name of a client-supplied file name, safe to store and show (never a path)."""
    if not name:
        return None
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    return name[:255] or None


def source_key(asset_id: str) -> str:
    return f"assets/{asset_id}/source"


def poster_key(asset_id: str) -> str:
    """Where an audio-only asset's poster (its waveform, a JPEG) is stored."""
    return f"assets/{asset_id}/poster.jpg"


#: A content hash as the API takes it: sha256, lowercase hex.
CONTENT_HASH = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: Path) -> str:
    """The sha256 of a local file, lowercase hex (what ``content_hash`` holds)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def find_by_content_hash(
    session: Session, content_hash: str, *, exclude: str | None = None
) -> Asset | None:
    """The oldest asset whose source has this sha256 (other than ``exclude``)."""
    query = select(Asset).where(Asset.content_hash == content_hash)
    if exclude is not None:
        query = query.where(Asset.id != exclude)
    return session.scalars(query.order_by(Asset.created_at, Asset.id).limit(1)).first()


def record_content_hash(session: Session, asset: Asset, content_hash: str) -> str | None:
    """Set ``asset.content_hash``; when an older asset has the same bytes, point
    ``duplicate_of`` at the oldest one. Returns that asset's id, or None.

    Two uploads of the same file committed at the same instant may both miss each other;
    the link is advice for people and importers, not a uniqueness constraint.
    """
    content_hash = content_hash.lower()
    if CONTENT_HASH.fullmatch(content_hash) is None:
        raise ValueError(f"not a sha256 hex digest: {content_hash!r}")
    asset.content_hash = content_hash
    original = find_by_content_hash(session, content_hash, exclude=asset.id)
    asset.duplicate_of = original.id if original is not None else None
    if original is not None:
        log.info("asset.duplicate", asset_id=asset.id, duplicate_of=original.id)
    return asset.duplicate_of


def queue_fingerprint(session: Session, asset: Asset) -> Job:
    """Add the ``asset.fingerprint`` job for an asset whose source is stored (dispatch it
    after commit); it finds assets with the same audio (see ``pipeline._fingerprint``)."""
    asset.fingerprint_status = FingerprintStatus.PENDING
    return create_job(session, FingerprintAudio(asset_id=asset.id), asset.id)


def initial_moderation(source_type: SourceType, hold: list[str]) -> ModerationStatus:
    """``pending`` for source types the operator holds for moderation (settings)."""
    return ModerationStatus.PENDING if source_type in hold else ModerationStatus.NOT_REQUIRED


def _new_asset(
    session: Session,
    *,
    title: str,
    filename: str | None,
    asset_id: str | None = None,
    origin: AssetOrigin,
    **fields: Any,
) -> Asset:
    asset = Asset(
        id=asset_id or new_id(),
        title=title.strip()[:500],
        source_filename=clean_filename(filename),
        status=AssetStatus.PREPARING,
        source_type=origin.source_type,
        moderation=origin.moderation,
        rights=origin.rights.to_json() if origin.rights is not None else None,
        passthrough=origin.passthrough,
        visibility=origin.rule.visibility,
        access=origin.rule.kind,
        rental_hours=origin.rule.rental_hours,
        protection=str(origin.protection),
        **fields,
    )
    asset.playback_ids.append(PlaybackId(policy=PlaybackPolicy.PUBLIC))
    session.add(asset)
    session.flush()
    return asset


@dataclass(frozen=True)
class AssetOrigin:
    source_type: SourceType
    moderation: ModerationStatus
    rights: Rights | None
    passthrough: str | None
    rule: AccessRule = AccessRule()
    protection: Protection = Protection.NONE


def _origin(
    runtime: Runtime,
    source_type: SourceType,
    rights: Rights | None,
    passthrough: str | None,
    rule: AccessRule | None = None,
    protection: Protection = Protection.NONE,
) -> AssetOrigin:
    moderation = initial_moderation(source_type, runtime.settings.moderation_hold)
    return AssetOrigin(
        source_type, moderation, rights, passthrough, rule or AccessRule(), protection
    )


def ingest_file(
    runtime: Runtime,
    path: Path,
    *,
    filename: str | None,
    title: str,
    source_type: SourceType = SourceType.CREATOR_UPLOAD,
    rights: Rights | None = None,
    passthrough: str | None = None,
    content_hash: str | None = None,
    channel_id: str | None = None,
    rule: AccessRule | None = None,
    protection: Protection = Protection.NONE,
) -> Asset:
    """Store a received file as a new asset's source and queue its processing.

    Every source gets its sha256 (``content_hash``, passed in when the caller hashed the
    bytes as they arrived, else computed here). When an older asset has the same hash the
    new one records ``duplicate_of`` and **is still processed**: a re-upload may be on
    purpose (another title, other rights or policy, or the first copy errored), each asset
    owns its renditions so deleting one never breaks the other, and a client that wants to
    avoid the work asks ``GET /api/v1/assets?content_hash=`` first, as ``mediaplane import``
    does. An ``asset.fingerprint`` job is queued beside the processing job.

    :param rights: validated rights (:func:`parse_rights`); None for unrestricted content.
    :param passthrough: an opaque client string (≤ 255 characters) returned as given.
    """
    digest = content_hash or sha256_file(path)
    return ingest_source(
        runtime,
        lambda key: runtime.store.put_file(key, path).size,
        filename=filename,
        title=title,
        source_type=source_type,
        rights=rights,
        passthrough=passthrough,
        content_hash=digest,
        channel_id=channel_id,
        rule=rule,
        protection=protection,
    )


def ingest_source(
    runtime: Runtime,
    place: Callable[[str], int],
    *,
    filename: str | None,
    title: str,
    source_type: SourceType = SourceType.CREATOR_UPLOAD,
    rights: Rights | None = None,
    passthrough: str | None = None,
    content_hash: str | None = None,
    channel_id: str | None = None,
    rule: AccessRule | None = None,
    protection: Protection = Protection.NONE,
) -> Asset:
    """Like :func:`ingest_file`, for a source the caller puts in the store itself (a
    finished resumable upload is renamed or composed there: no second copy).

    :param content_hash: the source's sha256 (hex) when the caller hashed it on the way in;
        otherwise the ``asset.fingerprint`` job computes it from the stored source.

    :param place: called with the new asset's source key; stores the source object
        there and returns its size in bytes.
    """
    origin = _origin(runtime, source_type, rights, passthrough, rule, protection)
    asset_id = new_id()  # chosen before the row, so the source lands under the asset's prefix
    key = source_key(asset_id)
    size = place(key)
    try:
        with runtime.db.session() as s:
            asset = _new_asset(
                s,
                title=title or clean_filename(filename) or "Untitled",
                filename=filename,
                asset_id=asset_id,
                origin=origin,
                source_key=key,
                source_size=size,
                channel_id=channel_id,
            )
            if content_hash:
                record_content_hash(s, asset, content_hash)
            job = create_job(s, ProcessAsset(asset_id=asset_id), subject_id=asset_id)
            fingerprint = queue_fingerprint(s, asset)
            emit_asset_event(s, EventType.ASSET_CREATED, asset, runtime.settings)
    except BaseException:
        runtime.store.delete(key)
        raise
    dispatch(runtime, job.id, job.type)
    dispatch(runtime, fingerprint.id, fingerprint.type)
    log.info("asset.created", asset_id=asset_id, bytes=size)
    return asset


def create_recording_asset(
    session: Session, settings: Settings, *, title: str, channel_id: str | None
) -> Asset:
    """A new ``preparing`` asset for a live recording (source type ``live_recording``, one
    public playback id) in ``session``'s transaction, with its ``video.asset.created``
    event. No job is queued: the live package hands the finished recording to its own
    job (``live.recording_finished``)."""
    kind = SourceType.LIVE_RECORDING
    origin = AssetOrigin(kind, initial_moderation(kind, settings.moderation_hold), None, None)
    asset = _new_asset(session, title=title, filename=None, origin=origin, channel_id=channel_id)
    emit_asset_event(session, EventType.ASSET_CREATED, asset, settings)
    log.info("asset.created", asset_id=asset.id, source="live")
    return asset


def ingest_url(
    runtime: Runtime,
    url: str,
    *,
    title: str,
    source_type: SourceType = SourceType.CREATOR_UPLOAD,
    rights: Rights | None = None,
    passthrough: str | None = None,
    channel_id: str | None = None,
    rule: AccessRule | None = None,
    protection: Protection = Protection.NONE,
) -> Asset:
    """Create an asset whose source is fetched from ``url`` by an import job."""
    origin = _origin(runtime, source_type, rights, passthrough, rule, protection)
    with runtime.db.session() as s:
        asset = _new_asset(
            s,
            origin=origin,
            title=title or url.rsplit("/", 1)[-1] or "Untitled",
            filename=url.rsplit("/", 1)[-1].split("?", 1)[0],
            input_url=url,
            channel_id=channel_id,
        )
        job = create_job(s, ImportUrl(asset_id=asset.id, url=url), subject_id=asset.id)
        emit_asset_event(s, EventType.ASSET_CREATED, asset, runtime.settings)
    dispatch(runtime, job.id, job.type)
    log.info("asset.created", asset_id=asset.id, source="url")
    return asset


def get_asset(session: Session, asset_id: str) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise AssetNotFound(f"No asset with id {asset_id!r}.")
    return asset


def asset_for_playback(session: Session, playback_id: str) -> tuple[Asset, PlaybackId]:
    pid = session.get(PlaybackId, playback_id)
    if pid is None:
        raise AssetNotFound("No such playback id.")
    return pid.asset, pid


def visible_to(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause: the assets ``principal`` may read. Admins: every asset; members of
    a channel: its assets; moderators besides: every asset that needs moderation (the
    queue and its decisions); anyone else: none."""
    if principal.sees_everything:
        return true()
    if principal.user_id is None:
        return false()
    clauses: list[ColumnElement[bool]] = [Asset.channel_id.in_(member_channel_ids(principal))]
    if principal.role is Role.MODERATOR:
        clauses.append(Asset.moderation != ModerationStatus.NOT_REQUIRED)
    return or_(*clauses)


def watchable_by(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause: the assets ``principal`` may watch (and keep in their library) —
    public and unlisted ones that moderation does not hold, besides every one
    :func:`visible_to` them. Private assets stay with their channel's members."""
    by_link = and_(
        Asset.visibility != Visibility.PRIVATE,
        Asset.moderation.not_in([ModerationStatus.PENDING, ModerationStatus.REJECTED]),
    )
    return or_(visible_to(principal), by_link)


def publicly_listed() -> ColumnElement[bool]:
    """A WHERE clause: the assets an anonymous viewer may find in the public list — public
    visibility, a public playback id, not held by moderation, not errored (those still
    preparing are listed with their progress: they play once ready). Unlisted and private
    assets are never listed."""
    public_pid = (
        select(PlaybackId.id)
        .where(PlaybackId.asset_id == Asset.id, PlaybackId.policy == PlaybackPolicy.PUBLIC)
        .exists()
    )
    return and_(
        Asset.visibility == Visibility.PUBLIC,
        public_pid,
        Asset.status != AssetStatus.ERRORED,
        Asset.moderation.not_in([ModerationStatus.PENDING, ModerationStatus.REJECTED]),
    )


def owned_by(principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause: the assets of the channels ``principal`` is a member of (a creator's
    own videos); for admins also the install's (no channel)."""
    if principal.user_id is None and not principal.sees_everything:
        return false()
    mine = Asset.channel_id.in_(member_channel_ids(principal))
    return or_(mine, Asset.channel_id.is_(None)) if principal.sees_everything else mine


class AssetAction(enum.StrEnum):
    """What a caller may do with an asset they can see."""

    READ = "read"
    WATCH = "watch"  # play, and keep in a library: also public and unlisted assets
    EDIT = "edit"  # change, delete, add playback ids: the channel's editors and owners
    MODERATE = "moderate"  # approve or reject: moderators and admins


def authorized_asset(
    session: Session, principal: Principal, asset_id: str, action: AssetAction
) -> Asset:
    """The asset, when ``principal`` may do ``action`` with it.

    :raises AssetNotFound: no such asset, or one the caller may not see (404, not 403:
        another channel's assets do not exist for them).
    :raises Forbidden: visible, but the caller lacks the role (``insufficient_role``,
        ``insufficient_channel_role``).
    """
    seen = watchable_by(principal) if action is AssetAction.WATCH else visible_to(principal)
    asset = session.scalars(select(Asset).where(Asset.id == asset_id, seen)).one_or_none()
    if asset is None:
        raise AssetNotFound(f"No asset with id {asset_id!r}.")
    if action is AssetAction.MODERATE:
        if principal.role not in (Role.MODERATOR, Role.ADMIN):
            raise Forbidden("Only moderators and admins decide moderation.", "insufficient_role")
    elif action is AssetAction.EDIT and not principal.sees_everything:
        role = role_in(session, principal, asset.channel_id) if asset.channel_id else None
        if role is None or not role.covers(ChannelRole.EDITOR):
            raise Forbidden(
                "Changing an asset needs the editor or owner role in its channel.",
                "insufficient_channel_role",
            )
    return asset


def list_assets(
    session: Session,
    *,
    principal: Principal,
    limit: int,
    page: int,
    content_hash: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> tuple[list[Asset], int]:
    """A page of the assets ``principal`` may see, newest first; only those with
    ``content_hash`` when given, and only those matching ``where`` when given."""
    query = select(Asset).where(visible_to(principal))
    if where is not None:
        query = query.where(where)
    if content_hash is not None:
        query = query.where(Asset.content_hash == content_hash)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Asset.created_at.desc(), Asset.id).limit(limit).offset((page - 1) * limit)
    ).all()
    return list(rows), total


_UNSET: Any = object()


def update_asset(
    runtime: Runtime,
    asset_id: str,
    *,
    title: str | None = None,
    rights: Any = _UNSET,
    rule: Callable[[AccessRule], AccessRule] | None = None,
    protection: Protection | None = None,
) -> None:
    """Change an asset's title and/or replace its rights (``rights=None`` removes them)
    and/or its access rule (``rule`` makes the new one from the stored one) and/or its
    protection policy (an ``asset.repackage`` job packages the stored renditions again,
    without re-encoding; the old ones play until it publishes the new).

    Playback sees the change within the origin's lookup cache time (a few seconds).
    """
    job: Job | None = None
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        if protection is not None and str(protection) != asset.protection:
            job = _repackage(s, asset, protection)
        if title is not None:
            asset.title = title.strip()[:500]
        if rights is not _UNSET:
            asset.rights = rights.to_json() if rights is not None else None
        if rule is not None:
            new = rule(AccessRule(asset.visibility, asset.access, asset.rental_hours))
            asset.visibility, asset.access, asset.rental_hours = (
                new.visibility,
                new.kind,
                new.rental_hours,
            )
        emit_asset_event(s, EventType.ASSET_UPDATED, asset, runtime.settings)
    if job is not None:
        dispatch(runtime, job.id, job.type)
    log.info("asset.updated", asset_id=asset_id, rights_changed=rights is not _UNSET)


def repackage_with_keys(runtime: Runtime, asset_id: str, put_keys: Callable[[], None]) -> bool:
    """Replace a protected asset's keys (``put_keys``, e.g. a CPIX import) and package its
    stored renditions again with them; AssetBusy (before any key changes) while it is
    being processed or re-packaged. False: the asset is clear (the keys wait for a
    protection policy)."""
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        protection = asset.protection
        if protection not in (None, "none"):
            _check_repackagable(s, asset)
    put_keys()  # the key store's own transactions (SQLite has one writer at a time)
    if protection in (None, "none"):
        return False
    with runtime.db.session() as s:
        job = _repackage(s, get_asset(s, asset_id), Protection(protection), rotate_keys=False)
    dispatch(runtime, job.id, job.type)
    return True


def _check_repackagable(s: Session, asset: Asset) -> None:
    """AssetBusy unless the asset is finished (ready, every rendition packaged) and not
    being re-packaged already."""
    finished = (
        asset.status is AssetStatus.READY
        and asset.presentation is not None
        and Presentation.from_dict(asset.presentation).complete
    )
    if not finished:
        raise AssetBusy(
            "The protection of an asset can change once it is ready and fully packaged; "
            "try again when its status is ready.",
        )
    if s.scalar(
        select(func.count())
        .select_from(Job)
        .where(
            Job.subject_id == asset.id,
            Job.type == RepackageAsset.job_type,
            Job.state.in_([JobState.PENDING, JobState.RUNNING]),
        )
    ):
        raise AssetBusy("This asset is being re-packaged already; try again when it is done.")


def _repackage(
    s: Session, asset: Asset, protection: Protection, *, rotate_keys: bool = True
) -> Job:
    """Set the asset's new protection policy and queue its re-packaging (AssetBusy unless
    :func:`_check_repackagable`)."""
    _check_repackagable(s, asset)
    asset.protection = str(protection)
    payload = RepackageAsset(asset_id=asset.id, protection=str(protection), rotate_keys=rotate_keys)
    return create_job(s, payload, subject_id=asset.id)


def moderate_asset(runtime: Runtime, asset_id: str, *, approve: bool) -> None:
    """Record a moderator's decision: approved assets play, rejected ones are refused."""
    decision = ModerationStatus.APPROVED if approve else ModerationStatus.REJECTED
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        asset.moderation = decision
        asset.moderated_at = utcnow()
        kind = EventType.ASSET_MODERATION_REJECTED
        if approve:
            kind = EventType.ASSET_MODERATION_APPROVED
        emit_asset_event(s, kind, asset, runtime.settings)
    log.info("asset.moderated", asset_id=asset_id, decision=str(decision))


def delete_asset(runtime: Runtime, asset_id: str) -> None:
    """Delete the asset's row, playback ids and every stored object under its prefix."""
    with runtime.db.session() as s:
        asset = get_asset(s, asset_id)
        prefix = asset.storage_prefix
        data = _asset_data(s, asset, runtime.settings)  # as it was
        _unlink_duplicates(s, asset)
        s.delete(asset)
        # The DELETE is flushed (its row lock held) inside emit before the event gets its
        # outbox id: a concurrent change's event is ordered before or after, never across.
        emit(s, EventType.ASSET_DELETED, "asset", asset_id, data)
    removed = runtime.store.delete_prefix(prefix)
    log.info("asset.deleted", asset_id=asset_id, objects=removed)


def emit_asset_event(session: Session, kind: EventType, asset: Asset, settings: Settings) -> None:
    """Add ``kind`` about ``asset`` to the outbox in ``session``'s transaction, its data the
    asset in the API's shape (playback URLs on the public URL)."""
    emit(session, kind, "asset", asset.id, _asset_data(session, asset, settings))


def _track_key(track: dict[str, Any]) -> tuple[str, str | None]:
    # one video track (no id of its own); audio tracks by their rendition id
    return str(track.get("type")), track.get("id")


def emit_tracks_ready(
    session: Session,
    asset_id: str,
    tracks: list[dict[str, Any]],
    known: list[dict[str, Any]],
) -> int:
    """Add a ``video.asset.track.ready`` to the outbox for each of the asset's ``tracks``
    (as stored on it) that is not in ``known`` (those already announced), in ``session``'s
    transaction; how many. Its object is the asset (so it is ordered with the asset's
    other events), its data the track as the API returns it plus ``asset_id``."""
    seen = {_track_key(t) for t in known}
    fresh = [t for t in tracks if _track_key(t) not in seen]
    for track in fresh:
        emit(
            session, EventType.ASSET_TRACK_READY, "asset", asset_id, {**track, "asset_id": asset_id}
        )
    return len(fresh)


def _asset_data(session: Session, asset: Asset, settings: Settings) -> dict[str, Any]:
    progress = progress_of(session, [asset]).get(asset.id)
    return asset_to_api(asset, progress, settings.effective_public_url)


def _unlink_duplicates(session: Session, asset: Asset) -> None:
    """Before ``asset`` is deleted: its exact duplicates point at the oldest of them
    instead, and audio matches of it lose the link."""
    heirs = session.scalars(
        select(Asset).where(Asset.duplicate_of == asset.id).order_by(Asset.created_at, Asset.id)
    ).all()
    for i, heir in enumerate(heirs):
        heir.duplicate_of = heirs[0].id if i else None
    session.execute(
        update(Asset).where(Asset.audio_match_of == asset.id).values(audio_match_of=None)
    )


def progress_of(session: Session, assets: list[Asset]) -> dict[str, float]:
    """Percent done of each asset still being processed (preparing, or ready on its first
    rendition while the rest of the ladder encodes), from its jobs.

    Importing counts for the first 10 %; the processing job and the chunk jobs of a
    chunked ladder share the rest equally. Below 100 until every rung is published.
    """
    growing = {a.id: a for a in assets if a.status is AssetStatus.PREPARING or _growing(a)}
    if not growing:
        return {}
    rows = session.execute(
        select(Job.subject_id, Job.type, Job.state, Job.progress)
        .where(Job.subject_id.in_(growing), Job.type.in_(PROGRESS_JOBS))
        .order_by(Job.created_at)
    ).all()
    imported: dict[str, float] = {}
    media: dict[str, list[float]] = {}
    for subject, jtype, state, progress in rows:
        done = 100.0 if state is JobState.SUCCEEDED else float(progress)
        if jtype == ImportUrl.job_type:
            imported[str(subject)] = done
        else:
            media.setdefault(str(subject), []).append(done)
    out: dict[str, float] = {}
    for aid, asset in growing.items():
        parts = media.get(aid, [])
        share = sum(parts) / len(parts) if parts else 0.0
        value = (10.0 + 0.9 * share) if parts else imported.get(aid, 0.0) * 0.1
        if _growing(asset):
            value = min(value, 99.0)
        out[aid] = round(value, 1)
    return out


@dataclass(frozen=True)
class PlaybackUrls:
    hls: str
    dash: str
    watch: str
    thumbnail: str


def playback_urls(base: str, playback_id: str) -> PlaybackUrls:
    return PlaybackUrls(
        hls=f"{base}/play/{playback_id}/master.m3u8",
        dash=f"{base}/play/{playback_id}/manifest.mpd",
        watch=f"{base}/watch/{playback_id}",
        thumbnail=f"{base}/play/{playback_id}/thumbnail.jpg",
    )


def _aspect(width: int | None, height: int | None, video: dict[str, Any] | None) -> str | None:
    """The display aspect ratio: the probe's exact one (pixel shape applied), else the
    reduced display frame size."""
    if video and video.get("display_aspect_ratio"):
        return str(video["display_aspect_ratio"])
    if not width or not height:
        return None
    g = gcd(width, height)
    return f"{width // g}:{height // g}"


#: Jobs whose progress makes up an asset's: the import, processing and ladder chunks.
PROGRESS_JOBS = (ImportUrl.job_type, ProcessAsset.job_type, EncodeChunk.job_type)


def _growing(asset: Asset) -> bool:
    """Ready on its first rendition while the rest of the ladder is still encoding."""
    return asset.status is AssetStatus.READY and not (
        asset.presentation and Presentation.from_dict(asset.presentation).complete
    )


def _renditions(asset: Asset) -> list[dict[str, Any]]:
    """Each rendition a player can get now (``ready``) or soon (``preparing``)."""
    if not asset.presentation:
        return []
    p = Presentation.from_dict(asset.presentation)
    out: list[dict[str, Any]] = [
        {
            "id": r.id,
            "type": r.kind,
            "status": "ready",
            "width": r.width,
            "height": r.height,
            "complete": r.complete,
        }
        for r in p.video + p.audio
    ]
    out += [{"id": rid, "type": "video", "status": "preparing"} for rid in p.pending]
    return out


def asset_to_api(asset: Asset, progress: float | None, base_url: str) -> dict[str, Any]:
    """The public JSON shape of an asset."""
    pid = asset.playback_ids[0].id if asset.playback_ids else None
    ready = asset.status is AssetStatus.READY
    data: dict[str, Any] = {
        "id": asset.id,
        "title": asset.title,
        "status": str(asset.status),
        "created_at": asset.created_at.isoformat(),
        "duration": round(asset.duration, 3) if asset.duration else None,
        "aspect_ratio": _aspect(asset.width, asset.height, asset.source_video),
        "max_resolution": f"{min(asset.width or 0, asset.height or 0)}p" if asset.height else None,
        "max_frame_rate": float(eval_fraction(asset.frame_rate)) if asset.frame_rate else None,
        "source_filename": asset.source_filename,
        "tracks": asset.tracks or [],
        "playback_ids": [{"id": p.id, "policy": str(p.policy)} for p in asset.playback_ids],
        "errors": asset.errors,
        "content_hash": asset.content_hash,
        "duplicate_of": asset.duplicate_of,
        "audio_match_of": asset.audio_match_of,
        "audio_fingerprint_status": (
            str(asset.fingerprint_status) if asset.fingerprint_status else None
        ),
        "progress": progress if progress is not None else (100.0 if ready else 0.0),
        "renditions": _renditions(asset),
        "source_type": str(asset.source_type),
        "moderation": str(asset.moderation),
        "channel_id": asset.channel_id,
        "rights": asset.rights,
        "visibility": str(asset.visibility),
        "access": str(asset.access),
        "rental_hours": asset.rental_hours,
        "protection": asset.protection,
        "passthrough": asset.passthrough,
        "source": {"video": asset.source_video},
    }
    if pid is not None:
        urls = playback_urls(base_url, pid)
        data["playback"] = {
            "hls": urls.hls,
            "dash": urls.dash,
            "watch": urls.watch,
            "thumbnail": urls.thumbnail,
        }
    return data


def eval_fraction(value: str) -> float:
    num, _, den = value.partition("/")
    return round(int(num) / int(den or 1), 3)
