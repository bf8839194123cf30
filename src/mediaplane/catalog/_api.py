"""REST API for assets: /api/v1/assets. Each route parses the request, calls one service
function (in a thread: they are blocking) and shapes the answer; an unknown asset is a
:class:`~._service.AssetNotFound`, answered 404 by :mod:`mediaplane.http`."""

from __future__ import annotations

import functools
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import AccessKind, AccessRule, Principal, Scope, authenticated
from mediaplane.http import ApiError, runtime_dep
from mediaplane.intake import UploadError, UrlRefused, check_url, read_body, receive_form
from mediaplane.runtime import Runtime

from ._access_rules import parse_access_rule
from ._models import PlaybackPolicy, Protection
from ._playback_ids import add_playback_id, remove_playback_id
from ._rights import (
    InvalidAssetInput,
    Rights,
    parse_passthrough,
    parse_rights,
    parse_rights_text,
    parse_source_type,
    viewer_territory,
)
from ._service import AssetBusy
from ._views import (
    asset_view,
    asset_views,
    decide_moderation,
    edit_asset,
    entitlement_view,
    import_asset,
    remove_asset,
    target_channel,
    upload_asset,
)

router = APIRouter(prefix="/api/v1", tags=["assets"])
#: Who may call what; which assets they see and change is the service's (``visible_to``).
_read = authenticated(Scope.READ)
_write = authenticated(Scope.WRITE)

#: A JSON body (an import URL and a few fields) is small.
_JSON_LIMIT = 256 * 1024


class UrlInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=4096)


class CreateAssetJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: UrlInput
    title: str = Field(default="", max_length=500)
    channel_id: str | None = Field(default=None, max_length=32)
    # Checked by parse_source_type / parse_rights / parse_passthrough for clearer messages.
    source_type: Any = None
    rights: Any = None
    passthrough: Any = None
    visibility: Any = None
    access: Any = None
    rental_hours: Any = None
    protection: Any = None


class UpdateAssetJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=500)
    rights: Any = None  # an object replaces the rights; null removes them
    visibility: Any = None
    access: Any = None
    rental_hours: Any = None
    protection: Any = None  # a change re-packages the asset (no re-encode)


def parse_protection(value: object) -> Protection:
    """``none`` (also when absent), ``aes-128``, ``cenc`` or ``cbcs``; 400 otherwise."""
    if value is None or value == "":
        return Protection.NONE
    if isinstance(value, str):
        try:
            return Protection(value.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(p.value for p in Protection)
    raise ApiError(
        400, "invalid_protection", f"protection must be one of {choices}; got {value!r:.40}."
    )


class PlaybackIdJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: PlaybackPolicy = PlaybackPolicy.PUBLIC


class ModerationJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]


def _origin_fields(
    source_type: object,
    rights: object,
    passthrough: object,
    *,
    rights_text: bool = False,
    rule: tuple[object, object, object] = (None, None, None),
    protection: object = None,
) -> dict[str, Any]:
    """Validated ``source_type``/``rights``/``passthrough`` keyword arguments for ingest_*."""
    try:
        parsed: Rights | None = None
        if rights_text and isinstance(rights, str) and rights.strip():
            parsed = parse_rights_text(rights)
        elif rights is not None and not rights_text:
            parsed = parse_rights(rights)
        return {
            "source_type": parse_source_type(source_type),
            "rights": parsed,
            "passthrough": parse_passthrough(passthrough),
            "rule": parse_access_rule(*rule),
            "protection": parse_protection(protection),
        }
    except InvalidAssetInput as exc:
        raise ApiError(400, exc.code, exc.message) from None


@router.post("/assets", status_code=201)
async def create_asset(
    request: Request, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> dict[str, Any]:
    """Create an asset from a multipart upload (field ``file``) or ``{"input": {"url": …}}``,
    in ``channel_id`` (default: the caller's first channel they edit; none for admins)."""
    ctype = request.headers.get("content-type", "")
    # Refused before any body is read when the caller has no channel to upload into.
    await run_in_threadpool(target_channel, rt, principal, None)
    if ctype.startswith("application/json"):
        return await _create_from_url(request, rt, principal)
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send multipart/form-data with a `file` field, or JSON with input.url.",
        )
    try:
        received = await receive_form(
            request,
            rt.settings.data_path / "tmp",
            rt.settings.max_upload_bytes,
            text_fields=(
                "title",
                "source_type",
                "rights",
                "passthrough",
                "channel_id",
                "visibility",
                "access",
                "rental_hours",
                "protection",
            ),
        )
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message, dict(exc.headers)) from None
    try:
        fields = _origin_fields(
            received.fields.get("source_type"),
            received.fields.get("rights"),
            received.fields.get("passthrough"),
            rights_text=True,
            rule=(
                received.fields.get("visibility"),
                received.fields.get("access"),
                received.fields.get("rental_hours"),
            ),
            protection=received.fields.get("protection"),
        )
        data = await run_in_threadpool(
            functools.partial(
                upload_asset,
                rt,
                principal,
                received.path,
                received.fields.get("channel_id") or None,
                content_hash=received.sha256,
                filename=received.filename,
                title=received.fields.get("title", ""),
                **fields,
            )
        )
    finally:
        received.path.unlink(missing_ok=True)
    return {"data": data}


async def _create_from_url(request: Request, rt: Runtime, principal: Principal) -> dict[str, Any]:
    try:
        body = CreateAssetJson.model_validate_json(await read_body(request, _JSON_LIMIT))
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message, dict(exc.headers)) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"Invalid JSON body: {exc}") from exc
    fields = _origin_fields(
        body.source_type,
        body.rights,
        body.passthrough,
        rule=(body.visibility, body.access, body.rental_hours),
        protection=body.protection,
    )
    # The channel before the URL: whether the caller may is said before what is wrong.
    await run_in_threadpool(target_channel, rt, principal, body.channel_id)
    try:
        await run_in_threadpool(check_url, body.input.url, rt.settings.import_allow)
    except UrlRefused as exc:
        raise ApiError(400, "url_refused", str(exc)) from exc
    data = await run_in_threadpool(
        functools.partial(
            import_asset, rt, principal, body.input.url, body.channel_id, title=body.title, **fields
        )
    )
    return {"data": data}


@router.get("/assets")
def list_(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
    limit: int = Query(25, ge=1, le=100),
    page: int = Query(1, ge=1),
    content_hash: str | None = Query(
        None,
        pattern="^[0-9a-fA-F]{64}$",
        description="Only assets whose source has this sha256 (hex)",
    ),
) -> dict[str, Any]:
    """List the assets the caller may see, newest first; ``content_hash`` finds copies of a
    file before uploading it."""
    digest = content_hash.lower() if content_hash else None
    data, total = asset_views(rt, principal=principal, limit=limit, page=page, content_hash=digest)
    return {"data": data, "pagination": {"page": page, "limit": limit, "total": total}}


@router.get("/assets/{asset_id}")
def get_(
    asset_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_read)
) -> dict[str, Any]:
    return {"data": asset_view(rt, principal, asset_id)}


@router.delete("/assets/{asset_id}", status_code=204)
def delete_(
    asset_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> Response:
    remove_asset(rt, principal, asset_id)
    return Response(status_code=204)


@router.patch("/assets/{asset_id}")
def update_(
    asset_id: str,
    body: UpdateAssetJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Change the title, replace the rights (``"rights": null`` removes them), and/or change
    the ``visibility``, ``access`` and ``rental_hours``, and/or the ``protection`` (the
    asset is re-packaged without re-encoding; 409 ``asset_busy`` before it is ready)."""
    changes: dict[str, Any] = {}
    if body.title is not None:
        changes["title"] = body.title
    if body.protection is not None:
        changes["protection"] = parse_protection(body.protection)
    given = (body.visibility, body.access, body.rental_hours)
    try:
        if "rights" in body.model_fields_set:
            changes["rights"] = parse_rights(body.rights) if body.rights is not None else None
        if any(v is not None for v in given):
            parse_access_rule(*given, base=_LOOSE)  # the field checks, before the row's
            changes["rule"] = functools.partial(_rule, given)
        return {"data": edit_asset(rt, principal, asset_id, **changes)}
    except InvalidAssetInput as exc:
        raise ApiError(400, exc.code, exc.message) from None
    except AssetBusy as exc:
        raise ApiError(409, exc.code, exc.message) from None


#: A base rule any given field combines with, to check the fields alone.
_LOOSE = AccessRule(kind=AccessKind.RENTAL)


def _rule(given: tuple[object, object, object], base: AccessRule) -> AccessRule:
    return parse_access_rule(*given, base=base)


@router.get("/assets/{asset_id}/entitlement")
def entitlement_(
    asset_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
) -> dict[str, Any]:
    """May the caller play this asset now? ``allowed``, else ``reason`` (``sign_in_required``,
    ``needs_subscription``, ``needs_rental``, ``rental_expired``, ``needs_purchase``, the
    catalog's refusals …) and ``message``; ``max_streams``: the plan's stream limit."""
    territory = lambda: viewer_territory(request, rt.settings)  # noqa: E731 (looked up if needed)
    return {"data": entitlement_view(rt, principal, asset_id, territory)}


@router.post("/assets/{asset_id}/moderation")
def moderate_(
    asset_id: str,
    body: ModerationJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Approve (playable) or reject (refused with 403 ``moderation_rejected``) an asset
    (moderators and admins)."""
    approve = body.decision == "approve"
    return {"data": decide_moderation(rt, principal, asset_id, approve=approve)}


@router.post("/assets/{asset_id}/playback-ids", status_code=201)
def add_playback_id_(
    asset_id: str,
    body: PlaybackIdJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Add a playback id: ``public`` plays for anyone, ``signed`` only with a playback token
    (an RS256 JWT from a signing key, ``?token=`` on the playback URL)."""
    return {"data": add_playback_id(rt, principal, asset_id, body.policy)}


@router.delete("/assets/{asset_id}/playback-ids/{playback_id}", status_code=204)
def remove_playback_id_(
    asset_id: str,
    playback_id: str,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> Response:
    """Remove a playback id (it stops playing within a few seconds)."""
    remove_playback_id(rt, principal, asset_id, playback_id)
    return Response(status_code=204)
