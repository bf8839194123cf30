"""REST API: /api/v1/signing-keys, /api/v1/api-keys (admin), /api/v1/auth/token and /refresh;
the channels router (``_channels_api``) is mounted beside them."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mediaplane.http import ApiError, read_small_body, runtime_dep
from mediaplane.runtime import Runtime

from ._api_keys import create_api_key, list_api_keys, revoke_api_key
from ._app_tokens import Device, TokenPair, TokenPolicy, refresh_tokens, sign_in_tokens
from ._channels_api import router as channels_router
from ._errors import AccountsError, AuthenticationFailed, NotFound, TokenInvalid
from ._models import ApiKey, Scope, SigningKey
from ._plans_api import router as plans_router
from ._principal import require_admin
from ._signing import create_signing_key, list_signing_keys, revoke_signing_key
from ._tokens import ensure_secret_key
from ._users import MAX_PASSWORD, authenticate

keys_router = APIRouter(prefix="/api/v1", tags=["keys"], dependencies=[Depends(require_admin)])
auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
_JSON_LIMIT = 16 * 1024
_M = TypeVar("_M", bound=BaseModel)


class ApiKeyJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Scope
    name: str = Field(default="", max_length=200)
    user_id: str | None = Field(default=None, max_length=32)


class TokenJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=MAX_PASSWORD)


class RefreshJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(max_length=128)


async def _json(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``, read through the bounded reader."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "Send a JSON body (application/json).")
    try:
        return model.model_validate_json(await read_small_body(request, _JSON_LIMIT))
    except ValidationError as exc:
        errors = exc.errors()
        if not errors:
            raise ApiError(400, "invalid_request", "The JSON body is not valid.") from None
        where = ".".join(str(p) for p in errors[0]["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{where}: {errors[0]['msg']}") from None


def _policy(rt: Runtime) -> TokenPolicy:
    return TokenPolicy(
        ensure_secret_key(rt.settings),
        rt.settings.access_token_seconds,
        rt.settings.refresh_token_seconds,
    )


def _device(request: Request) -> Device:
    agent = request.headers.get("user-agent", "")[:300]
    return Device(agent, request.client.host if request.client else None)


def _signing_key(row: SigningKey) -> dict[str, Any]:
    return {"id": row.id, "created_at": row.created_at.isoformat()}


def _api_key(row: ApiKey) -> dict[str, Any]:
    when = {
        k: (v.isoformat() if v is not None else None)
        for k, v in (
            ("created_at", row.created_at),
            ("last_used_at", row.last_used_at),
            ("revoked_at", row.revoked_at),
        )
    }
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "scope": str(row.scope),
        "source": str(row.source),
        "user_id": row.user_id,
        **when,
    }


def _pair(pair: TokenPair) -> dict[str, Any]:
    return {
        "data": {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "refresh_token": pair.refresh_token,
        }
    }


# --- signing keys -------------------------------------------------------------------------


@keys_router.post("/signing-keys", status_code=201)
def create_signing_key_route(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Create a signing key; ``private_key`` (base64 of an RSA PEM) is returned this once."""
    with rt.db.session() as s:
        new = create_signing_key(s)
        return {"data": {**_signing_key(new.row), "private_key": new.private_key}}


@keys_router.get("/signing-keys")
def list_signing_keys_route(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """The signing keys in use (ids only: private keys are never kept)."""
    with rt.db.session() as s:
        return {"data": [_signing_key(k) for k in list_signing_keys(s)]}


@keys_router.delete("/signing-keys/{key_id}", status_code=204)
def revoke_signing_key_route(key_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Revoke a signing key: tokens it signed stop playing."""
    try:
        with rt.db.session() as s:
            revoke_signing_key(s, key_id)
    except NotFound as exc:
        raise ApiError(404, exc.code, exc.message) from None
    return Response(status_code=204)


# --- API keys -----------------------------------------------------------------------------


@keys_router.post("/api-keys", status_code=201)
async def create_api_key_route(
    request: Request, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Create an API key (``{"scope": "read"|"write"|"admin", "name"}``); ``key`` is shown once."""
    body = await _json(request, ApiKeyJson)

    def create() -> dict[str, Any]:
        with rt.db.session() as s:
            new = create_api_key(s, body.scope, body.name, body.user_id)
            return {"data": {**_api_key(new.row), "key": new.key}}

    try:
        return await run_in_threadpool(create)
    except AccountsError as exc:
        raise ApiError(400, exc.code, exc.message) from None


@keys_router.get("/api-keys")
def list_api_keys_route(
    include_revoked: bool = False, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """The API keys by prefix (the keys themselves are never kept)."""
    with rt.db.session() as s:
        return {"data": [_api_key(k) for k in list_api_keys(s, include_revoked=include_revoked)]}


@keys_router.delete("/api-keys/{key_id}", status_code=204)
def revoke_api_key_route(key_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Revoke an API key at once."""
    try:
        with rt.db.session() as s:
            revoke_api_key(s, key_id)
    except NotFound as exc:
        raise ApiError(404, exc.code, exc.message) from None
    return Response(status_code=204)


# --- tokens for apps ----------------------------------------------------------------------


@auth_router.post("/token")
async def token_route(request: Request, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Sign in with ``{"email", "password"}``: an access token and a refresh token."""
    body = await _json(request, TokenJson)
    policy = _policy(rt)

    def sign_in() -> TokenPair:
        with rt.db.session() as s:
            user = authenticate(s, body.email, body.password)
            return sign_in_tokens(s, policy, user, _device(request))

    try:
        return _pair(await run_in_threadpool(sign_in))
    except AuthenticationFailed as exc:
        raise ApiError(401, exc.code, exc.message) from None


@auth_router.post("/refresh")
async def refresh_route(request: Request, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Trade ``{"refresh_token"}`` for a new pair; a token works once (reuse signs out its
    whole family)."""
    body = await _json(request, RefreshJson)
    policy = _policy(rt)

    def rotate() -> TokenPair | TokenInvalid:
        with rt.db.session() as s:
            try:
                return refresh_tokens(s, policy, body.refresh_token, _device(request))
            except TokenInvalid as exc:  # returned, not raised: a family revocation commits
                return exc

    result = await run_in_threadpool(rotate)
    if isinstance(result, TokenInvalid):
        raise ApiError(401, result.code, result.message)
    return _pair(result)


def api_router() -> APIRouter:
    """Every accounts route, for the app to mount."""
    router = APIRouter()
    router.include_router(keys_router)
    router.include_router(auth_router)
    router.include_router(channels_router)
    router.include_router(plans_router)
    return router
