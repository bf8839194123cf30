"""Sign-in with OpenID Connect providers named in the settings (authorization-code flow
with PKCE S256, ``state`` and ``nonce``).

``GET /auth/oidc/{provider}/start?next=`` sends the browser to the provider, with the
flow's state, nonce and PKCE verifier kept in a signed, HttpOnly cookie that lives ten
minutes. ``GET /auth/oidc/{provider}/callback`` checks ``state`` against it, trades the
code (and verifier) for tokens, validates the ID token (signature against the provider's
JWKS, ``iss``, ``aud``, ``exp``, ``nonce``), finds or creates the user and signs them in
(:func:`sign_in_user`). A user is found by ``iss`` + ``sub`` first; else by e-mail, and only
when the provider vouches for the address (``email_verified: true``, or ``trust_email`` in
its settings) and the account's own address is verified too; else a new user is made, again
only from a vouched-for address. An unverified address never reaches an existing account,
and makes none.

Every request to a provider is bounded in time (``oidc_timeout_seconds``) and size; the
provider's URL is operator configuration, so loopback and private addresses are allowed.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from mediaplane.config import OidcProvider, Settings
from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._app_tokens import TokenPolicy, sign_in_tokens
from ._errors import AccountsError, AuthenticationFailed
from ._models import Identity, User
from ._sessions import SESSION_COOKIE, create_session, set_cookie
from ._tokens import ensure_secret_key
from ._users import create_user, find_user, normalise_email

log = structlog.get_logger("mediaplane.accounts.oidc")

#: The flow cookie: state, nonce, verifier and ``next`` of one sign-in in progress.
FLOW_COOKIE = "mp_oidc_flow"
FLOW_SECONDS = 600
_FLOW_AUDIENCE = "mediaplane-oidc-flow"
#: Largest document a provider may send (discovery, JWKS, token response).
MAX_DOCUMENT_BYTES = 512 * 1024
#: Discovery documents and key sets are re-read after this long.
CACHE_SECONDS = 3600.0
#: Clock skew allowed between us and the provider, in seconds.
LEEWAY_SECONDS = 60
#: Asymmetric algorithms only: never ``none``, never HS* keyed with something public.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_NEXT_LIMIT = 2000


class OidcError(AccountsError):
    """A sign-in through a provider that cannot go on; ``status`` is the HTTP answer.

    Codes: ``oidc_state_missing``, ``oidc_state_mismatch``, ``oidc_denied``,
    ``oidc_code_rejected``, ``oidc_provider_unavailable``, ``oidc_provider_invalid``,
    ``oidc_bad_signature``, ``oidc_wrong_issuer``, ``oidc_wrong_audience``,
    ``oidc_token_expired``, ``oidc_nonce_mismatch``, ``oidc_invalid_id_token``,
    ``oidc_no_email``, ``oidc_email_unverified``, ``oidc_account_unverified``,
    ``invalid_next``.
    """

    code = "oidc_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code)
        self.status = status


def _unavailable(provider: str, what: str) -> OidcError:
    return OidcError(
        502,
        "oidc_provider_unavailable",
        f"The sign-in provider {provider!r} did not answer ({what}); try again later.",
    )


# --- talking to providers -----------------------------------------------------------------


@dataclass(frozen=True)
class ProviderMetadata:
    """What discovery says about a provider (the parts this client uses)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: frozenset[str]
    auth_methods: frozenset[str]

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> ProviderMetadata:
        def url(key: str) -> str:
            value = doc.get(key)
            if not isinstance(value, str) or not re.match(r"^https?://", value):
                raise ValueError(f"discovery has no {key}")
            return value

        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("discovery has no issuer")
        algs = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return cls(
            issuer=issuer,
            authorization_endpoint=url("authorization_endpoint"),
            token_endpoint=url("token_endpoint"),
            jwks_uri=url("jwks_uri"),
            algorithms=frozenset(a for a in algs if a in ALGORITHMS) or frozenset({"RS256"}),
            auth_methods=frozenset(str(m) for m in methods),
        )


@dataclass
class _Cached:
    value: Any
    expires: float


@dataclass
class OidcClient:
    """Fetches (and caches) providers' discovery documents and key sets, and trades codes.

    :param timeout: seconds each request may take, connection and body included.
    """

    timeout: float
    _cache: dict[str, _Cached] = field(default_factory=dict)

    async def _request(
        self, provider: str, method: str, url: str, **kw: Any
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON object) of one bounded request; 502 OidcError when it fails."""
        try:
            async with (
                asyncio.timeout(self.timeout),
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client,
                client.stream(method, url, headers={"Accept": "application/json"}, **kw) as r,
            ):
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise _unavailable(provider, "the answer is too large")
                status = r.status_code
        except (httpx.HTTPError, TimeoutError) as exc:
            log.warning("oidc.unreachable", provider=provider, error=type(exc).__name__)
            raise _unavailable(provider, type(exc).__name__) from None
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise _unavailable(provider, f"HTTP {status}, not a JSON object")
        return status, doc

    async def _cached(self, provider: str, url: str, *, fresh: bool = False) -> dict[str, Any]:
        hit = self._cache.get(url)
        if hit is not None and not fresh and hit.expires > time.monotonic():
            return dict(hit.value)
        status, doc = await self._request(provider, "GET", url)
        if status != 200:
            raise _unavailable(provider, f"HTTP {status} from {url}")
        self._cache[url] = _Cached(doc, time.monotonic() + CACHE_SECONDS)
        return doc

    async def metadata(self, provider: OidcProvider) -> ProviderMetadata:
        doc = await self._cached(provider.name, provider.discovery_url)
        try:
            return ProviderMetadata.parse(doc)
        except ValueError as exc:
            self._cache.pop(provider.discovery_url, None)
            raise OidcError(
                502, "oidc_provider_invalid", f"Provider {provider.name!r}: {exc}."
            ) from None

    async def jwks(self, provider: OidcProvider, meta: ProviderMetadata, *, fresh: bool) -> Any:
        return await self._cached(provider.name, meta.jwks_uri, fresh=fresh)

    async def exchange(
        self,
        provider: OidcProvider,
        meta: ProviderMetadata,
        code: str,
        verifier: str,
        redirect_uri: str,
    ) -> dict[str, Any]:
        """The token response for ``code`` (authenticated with the client secret)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        secret = provider.client_secret.get_secret_value()
        kw: dict[str, Any] = {}
        methods = meta.auth_methods
        if "client_secret_post" in methods and "client_secret_basic" not in methods:
            form |= {"client_id": provider.client_id, "client_secret": secret}
        else:  # RFC 6749 §2.3.1: both halves form-encoded before Basic
            kw["auth"] = httpx.BasicAuth(quote(provider.client_id, safe=""), quote(secret, safe=""))
        status, doc = await self._request(
            provider.name, "POST", meta.token_endpoint, data=form, **kw
        )
        if status >= 500:
            raise _unavailable(provider.name, f"HTTP {status} from the token endpoint")
        if status != 200 or not isinstance(doc.get("id_token"), str):
            error = str(doc.get("error", "no id_token"))[:100]
            raise OidcError(
                400,
                "oidc_code_rejected",
                f"The provider refused the sign-in code ({error}); it may have been used "
                "already or expired. Start the sign-in again.",
            )
        return doc


# --- the ID token -------------------------------------------------------------------------


def validate_id_token(
    id_token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: frozenset[str] = ALGORITHMS,
) -> dict[str, Any]:
    """The claims of ``id_token`` once its signature (a key of ``jwks``), ``iss``, ``aud``
    (and ``azp`` when several audiences), ``exp``, ``iat``, ``sub`` and ``nonce`` check out.

    :raises OidcError: 401 with a code naming what failed; a ``kid`` missing from ``jwks``
        is ``oidc_unknown_key`` (fetch the key set again and retry once).
    """
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.InvalidTokenError:
        raise _rejected("oidc_invalid_id_token", "is not a JWT") from None
    alg = header.get("alg")
    if alg not in (algorithms & ALGORITHMS):
        raise _rejected("oidc_bad_signature", f"uses algorithm {alg!r}")
    key = _pick_key(jwks, header.get("kid"), str(alg))
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=[str(alg)],
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise _rejected("oidc_token_expired", "has expired") from None
    except jwt.InvalidIssuerError:
        raise _rejected("oidc_wrong_issuer", "comes from another issuer") from None
    except jwt.InvalidAudienceError:
        raise _rejected("oidc_wrong_audience", "was issued to another client") from None
    except jwt.InvalidSignatureError:
        raise _rejected("oidc_bad_signature", "has a bad signature") from None
    except jwt.InvalidTokenError as exc:
        raise _rejected("oidc_invalid_id_token", f"is not valid ({exc})") from None
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise _rejected("oidc_wrong_audience", "names another authorised party")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise _rejected("oidc_nonce_mismatch", "does not carry this sign-in's nonce")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
        raise _rejected("oidc_invalid_id_token", "has no usable sub")
    return claims


def _rejected(code: str, what: str) -> OidcError:
    return OidcError(401, code, f"The provider's ID token {what}; sign in again.")


def _pick_key(jwks: dict[str, Any], kid: object, alg: str) -> Any:
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
    usable = [k for k in keys if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
    matching = [k for k in usable if kid is None or k.get("kid") == kid]
    if not matching:
        raise OidcError(401, "oidc_unknown_key", "The ID token's signing key is unknown.")
    try:
        return jwt.PyJWK(matching[0], algorithm=alg).key
    except (jwt.PyJWKError, jwt.InvalidKeyError):
        raise _rejected("oidc_bad_signature", "names a key we cannot use") from None


# --- linking ------------------------------------------------------------------------------


def link_user(s: Session, provider: OidcProvider, claims: dict[str, Any]) -> User:
    """The user these ID-token claims sign in: by ``iss`` + ``sub``; else by an e-mail the
    provider vouches for (to an account whose address is verified, or a new one). Refused
    with :class:`OidcError`: no address (400), an unverified one (403), an account whose
    own address was never verified (409).

    :raises AuthenticationFailed: the user is disabled.
    """
    iss, sub = str(claims["iss"]), str(claims["sub"])
    found = _by_identity(s, iss, sub)
    if found is None:
        by_email = _by_email(s, provider, claims)
        try:
            with s.begin_nested():
                s.add(Identity(user_id=by_email.id, iss=iss, sub=sub))
            found = by_email
            log.info("oidc.linked", provider=provider.name, user_id=found.id)
        except IntegrityError:  # a concurrent first sign-in linked it: use that one
            found = _by_identity(s, iss, sub)
            if found is None:
                raise
    if found.disabled:
        raise AuthenticationFailed("This account is disabled.")
    return found


def _by_identity(s: Session, iss: str, sub: str) -> User | None:
    return s.scalars(
        select(User)
        .join(Identity, Identity.user_id == User.id)
        .where(Identity.iss == iss, Identity.sub == sub)
    ).one_or_none()


def _by_email(s: Session, provider: OidcProvider, claims: dict[str, Any]) -> User:
    raw = claims.get("email")
    if not isinstance(raw, str) or not raw:
        raise OidcError(
            400,
            "oidc_no_email",
            f"Provider {provider.name!r} sent no e-mail address; allow the 'email' scope.",
        )
    try:
        email = normalise_email(raw)
    except AccountsError:
        raise OidcError(400, "oidc_no_email", "The provider's e-mail address is not one.") from None
    if claims.get("email_verified") is not True and not provider.trust_email:
        # Neither linked nor created: an account made from an address nobody verified would
        # squat it, and keep its maker's identity once the real owner takes it over.
        raise OidcError(
            403,
            "oidc_email_unverified",
            f"Provider {provider.name!r} has not verified your e-mail address; verify it "
            "there, or sign in another way.",
        )
    user = find_user(s, email)
    if user is None:
        return create_user(s, email, None, email_verified=True)
    if not user.email_verified:
        # Whoever made that account never proved the address: it may be a squatter's.
        raise OidcError(
            409,
            "oidc_account_unverified",
            "An account with this e-mail address exists but its address was never "
            "verified: verify it (or reset its password) first, then sign in here.",
        )
    return user


# --- the flow cookie and next -------------------------------------------------------------


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path on this site (``/…``); an absolute or scheme-relative
    URL is an open redirect and refused."""
    if value is None or value == "":
        return None
    if (
        len(value) > _NEXT_LIMIT
        or not value.startswith("/")
        or value.startswith(("//", "/\\"))
        or any(c in value for c in "\\\r\n\t\x00")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        raise OidcError(400, "invalid_next", "next must be a path on this site, like /me.")
    return value


@dataclass(frozen=True)
class Flow:
    provider: str
    state: str
    nonce: str
    verifier: str
    next_url: str | None


def encode_flow(secret: str, flow: Flow) -> str:
    claims = {
        "aud": _FLOW_AUDIENCE,
        "exp": int(time.time()) + FLOW_SECONDS,
        "p": flow.provider,
        "s": flow.state,
        "n": flow.nonce,
        "v": flow.verifier,
        "x": flow.next_url,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_flow(secret: str, value: str | None) -> Flow:
    missing = OidcError(
        400,
        "oidc_state_missing",
        "This sign-in has expired or was started in another browser; start it again.",
    )
    if not value or len(value) > 4096:
        raise missing
    try:
        c = jwt.decode(value, secret, algorithms=["HS256"], audience=_FLOW_AUDIENCE)
        return Flow(str(c["p"]), str(c["s"]), str(c["n"]), str(c["v"]), c.get("x"))
    except (jwt.InvalidTokenError, KeyError):
        raise missing from None


# --- signing in ---------------------------------------------------------------------------


def _policy(settings: Settings) -> TokenPolicy:
    return TokenPolicy(
        ensure_secret_key(settings), settings.access_token_seconds, settings.refresh_token_seconds
    )


def sign_in_user(request: Request, user: User, next_url: str | None = None) -> Response:
    """What a user who just signed in gets: a redirect to ``next_url`` when the sign-in
    began with one, else JSON app tokens (an access and a refresh token).

    The one place the OIDC callback hands a user over; the web session cookie goes here.
    Runs blocking database work: call it from a thread.
    """
    rt: Runtime = request.app.state.runtime
    if next_url is not None:  # a browser: a web session, as a local sign-in opens
        with rt.db.session() as s:
            row = s.get(User, user.id)
            if row is None or row.disabled:
                raise AuthenticationFailed("This account is disabled.")
            seconds = rt.settings.web_session_seconds
            agent = request.headers.get("user-agent", "")
            address = request.client.host if request.client else None
            new = create_session(s, row, agent, seconds, address=address)
        response = RedirectResponse(next_url, status_code=303)
        set_cookie(request, response, SESSION_COOKIE, new.token, seconds)
        return response
    with rt.db.session() as s:
        row = s.get(User, user.id)
        if row is None or row.disabled:
            raise AuthenticationFailed("This account is disabled.")
        pair = sign_in_tokens(s, _policy(rt.settings), row)
        body = {
            "data": {
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
                "user": {"id": row.id, "email": row.email, "role": str(row.role)},
            }
        }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# --- routes -------------------------------------------------------------------------------


def _provider(rt: Runtime, name: str) -> OidcProvider:
    for provider in rt.settings.oidc_providers:
        if provider.name == name:
            return provider
    raise ApiError(404, "not_found", f"No sign-in provider is called {name!r}.")


def _https(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.effective_public_url.startswith("https:")


def _callback_url(settings: Settings, name: str) -> str:
    return f"{settings.effective_public_url}/auth/oidc/{name}/callback"


def _api_error(exc: OidcError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def oidc_router(client: OidcClient | None = None) -> APIRouter:
    """``/auth/oidc`` (the providers), ``/auth/oidc/{provider}/start`` and ``…/callback``."""
    router = APIRouter(prefix="/auth/oidc", tags=["auth"])
    holder: list[OidcClient] = [client] if client is not None else []

    def _client(rt: Runtime) -> OidcClient:
        if not holder:
            holder.append(OidcClient(rt.settings.oidc_timeout_seconds))
        return holder[0]

    @router.get("")
    def list_providers(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
        """The configured sign-in providers, with the URL that starts each."""
        return {
            "data": [
                {
                    "name": p.name,
                    "title": p.title or p.name,
                    "start_url": f"/auth/oidc/{p.name}/start",
                }
                for p in rt.settings.oidc_providers
            ]
        }

    @router.get("/{provider}/start")
    async def start(
        request: Request,
        provider: str,
        next: str | None = None,  # noqa: A002 - the query parameter's name
        rt: Runtime = Depends(runtime_dep),
    ) -> Response:
        """Send the browser to the provider (303), the flow in a signed cookie."""
        config = _provider(rt, provider)
        try:
            flow = Flow(
                config.name,
                generate_token(32),
                generate_token(32),
                generate_token(64),
                safe_next(next),
            )
            meta = await _client(rt).metadata(config)
        except OidcError as exc:
            raise _api_error(exc) from None
        url = prepare_grant_uri(
            meta.authorization_endpoint,
            config.client_id,
            "code",
            redirect_uri=_callback_url(rt.settings, config.name),
            scope=" ".join(config.scopes),
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
        )
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE,
            encode_flow(ensure_secret_key(rt.settings), flow),
            max_age=FLOW_SECONDS,
            path="/auth/oidc",
            secure=_https(request, rt.settings),
            httponly=True,
            samesite="lax",  # the provider's redirect back is a top-level GET: Lax sends it
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get("/{provider}/callback")
    async def callback(
        request: Request, provider: str, rt: Runtime = Depends(runtime_dep)
    ) -> Response:
        """The provider's answer: check it, link or create the user, sign them in."""
        config = _provider(rt, provider)
        try:
            flow, claims = await _complete(request, rt, _client(rt), config)
            response = await run_in_threadpool(_finish, request, rt, config, claims, flow.next_url)
        except OidcError as exc:
            log.info("oidc.refused", provider=config.name, code=exc.code)
            raise _api_error(exc) from None
        except AuthenticationFailed as exc:
            raise ApiError(403, "account_disabled", exc.message) from None
        response.delete_cookie(FLOW_COOKIE, path="/auth/oidc")
        return response

    return router


async def _complete(
    request: Request, rt: Runtime, client: OidcClient, config: OidcProvider
) -> tuple[Flow, dict[str, Any]]:
    """The flow and the validated ID-token claims of this callback."""
    flow = decode_flow(ensure_secret_key(rt.settings), request.cookies.get(FLOW_COOKIE))
    q = request.query_params
    state = q.get("state", "")
    if flow.provider != config.name or not secrets.compare_digest(
        state.encode(), flow.state.encode()
    ):
        raise OidcError(
            400, "oidc_state_mismatch", "The sign-in state does not match; start again."
        )
    if q.get("error"):
        raise OidcError(
            400, "oidc_denied", f"The provider did not sign you in ({q['error'][:100]})."
        )
    code = q.get("code", "")
    if not code or len(code) > 4096:
        raise OidcError(400, "oidc_code_rejected", "The provider sent no sign-in code.")
    meta = await client.metadata(config)
    tokens = await client.exchange(
        config, meta, code, flow.verifier, _callback_url(rt.settings, config.name)
    )

    def check(jwks: dict[str, Any]) -> dict[str, Any]:
        return validate_id_token(
            tokens["id_token"],
            jwks,
            issuer=meta.issuer,
            client_id=config.client_id,
            nonce=flow.nonce,
            algorithms=meta.algorithms,
        )

    try:
        return flow, check(await client.jwks(config, meta, fresh=False))
    except OidcError as exc:
        if exc.code != "oidc_unknown_key":
            raise
        return flow, check(await client.jwks(config, meta, fresh=True))  # keys rotated


def _finish(
    request: Request,
    rt: Runtime,
    config: OidcProvider,
    claims: dict[str, Any],
    next_url: str | None,
) -> Response:
    with rt.db.session() as s:
        user = link_user(s, config, claims)
        s.flush()
        s.expunge(user)
    return sign_in_user(request, user, next_url)
