"""REST API for assets: /api/v1/assets. Each route parses the request, calls one service
function (in a thread: they are blocking) and shapes the answer; an unknown asset is a
:class:`~._service.AssetNotFound`, answered 404 by :mod:`mediaplane.http`."""

from __future__ import annotations

import functools
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import require_admin
from mediaplane.http import ApiError, runtime_dep
from mediaplane.intake import UploadError, UrlRefused, check_url, read_body, receive_form
from mediaplane.runtime import Runtime

from ._rights import (
    InvalidAssetInput,
    Rights,
    parse_passthrough,
    parse_rights,
    parse_rights_text,
    parse_source_type,
)
from ._service import delete_asset
from ._views import (
    asset_view,
    asset_views,
    decide_moderation,
    edit_asset,
    import_asset,
    upload_asset,
)

router = APIRouter(prefix="/api/v1", tags=["assets"], dependencies=[Depends(require_admin)])
#: A JSON body (an import URL and a few fields) is small.
_JSON_LIMIT = 256 * 1024


class UrlInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=4096)


class CreateAssetJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: UrlInput
    title: str = Field(default="", max_length=500)
    # Checked by parse_source_type / parse_rights / parse_passthrough for clearer messages.
    source_type: Any = None
    rights: Any = None
    passthrough: Any = None


class UpdateAssetJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=500)
    rights: Any = None  # an object replaces the rights; null removes them


class ModerationJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]


def _origin_fields(
    source_type: object, rights: object, passthrough: object, *, rights_text: bool = False
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
        }
    except InvalidAssetInput as exc:
        raise ApiError(400, exc.code, exc.message) from None


@router.post("/assets", status_code=201)
async def create_asset(request: Request, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Create an asset from a multipart upload (field ``file``) or ``{"input": {"url": …}}``."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return await _create_from_url(request, rt)
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
            text_fields=("title", "source_type", "rights", "passthrough"),
        )
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message, dict(exc.headers)) from None
    try:
        fields = _origin_fields(
            received.fields.get("source_type"),
            received.fields.get("rights"),
            received.fields.get("passthrough"),
            rights_text=True,
        )
        data = await run_in_threadpool(
            functools.partial(
                upload_asset,
                rt,
                received.path,
                content_hash=received.sha256,
                filename=received.filename,
                title=received.fields.get("title", ""),
                **fields,
            )
        )
    finally:
        received.path.unlink(missing_ok=True)
    return {"data": data}


async def _create_from_url(request: Request, rt: Runtime) -> dict[str, Any]:
    try:
        body = CreateAssetJson.model_validate_json(await read_body(request, _JSON_LIMIT))
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message, dict(exc.headers)) from None
    except ValueError as exc:
        raise ApiError(400, "invalid_request", f"Invalid JSON body: {exc}") from exc
    fields = _origin_fields(body.source_type, body.rights, body.passthrough)
    try:
        await run_in_threadpool(check_url, body.input.url, rt.settings.import_allow)
    except UrlRefused as exc:
        raise ApiError(400, "url_refused", str(exc)) from exc
    data = await run_in_threadpool(
        functools.partial(import_asset, rt, body.input.url, title=body.title, **fields)
    )
    return {"data": data}


@router.get("/assets")
def list_(
    rt: Runtime = Depends(runtime_dep),
    limit: int = Query(25, ge=1, le=100),
    page: int = Query(1, ge=1),
    content_hash: str | None = Query(
        None,
        pattern="^[0-9a-fA-F]{64}$",
        description="Only assets whose source has this sha256 (hex)",
    ),
) -> dict[str, Any]:
    """List assets, newest first; ``content_hash`` finds copies of a file before uploading it."""
    digest = content_hash.lower() if content_hash else None
    data, total = asset_views(rt, limit=limit, page=page, content_hash=digest)
    return {"data": data, "pagination": {"page": page, "limit": limit, "total": total}}


@router.get("/assets/{asset_id}")
def get_(asset_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    return {"data": asset_view(rt, asset_id)}


@router.delete("/assets/{asset_id}", status_code=204)
def delete_(asset_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    delete_asset(rt, asset_id)
    return Response(status_code=204)


@router.patch("/assets/{asset_id}")
def update_(
    asset_id: str, body: UpdateAssetJson, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Change the title and/or replace the rights (``"rights": null`` removes them)."""
    changes: dict[str, Any] = {}
    if body.title is not None:
        changes["title"] = body.title
    if "rights" in body.model_fields_set:
        try:
            changes["rights"] = parse_rights(body.rights) if body.rights is not None else None
        except InvalidAssetInput as exc:
            raise ApiError(400, exc.code, exc.message) from None
    return {"data": edit_asset(rt, asset_id, **changes)}


@router.post("/assets/{asset_id}/moderation")
def moderate_(
    asset_id: str, body: ModerationJson, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Approve (playable) or reject (refused with 403 ``moderation_rejected``) an asset."""
    return {"data": decide_moderation(rt, asset_id, approve=body.decision == "approve")}
