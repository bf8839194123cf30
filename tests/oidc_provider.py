"""A real OpenID Connect provider for the tests, built on Authlib's server side (Flask) and
served by werkzeug on a loopback port in a thread.

It does the authorization-code flow with PKCE (S256 required) and nonce, signs RS256 ID
tokens with its own key (published at ``/jwks``), spends each code once, and has a login
form: POST ``sub`` to the authorization URL, as a browser would after typing it in. Tests
set the claims of each user in :attr:`Provider.users` and can make it misbehave through
:attr:`Provider.id_token_overrides` (claims that replace the real ``nonce``, ``aud``, …).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import flask
import werkzeug.serving
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from joserfc.jwk import RSAKey

# Authlib refuses plain http unless told; this provider only ever listens on loopback.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in scope.split() if s in {"openid", "email", "profile"})

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri.startswith("http://127.0.0.1:")

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    sub: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class User:
    sub: str

    def get_user_id(self) -> str:
        return self.sub


@dataclass
class Provider:
    """The provider's state, which tests read and change while it runs."""

    client_id: str = "mediaplane-test"
    client_secret: str = "provider-secret-0123456789"
    issuer: str = ""
    #: sub → claims (``email``, ``email_verified``, …) put in that user's ID token.
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Claims that replace the ones the provider would send, in every ID token.
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    key: RSAKey = field(
        default_factory=lambda: RSAKey.generate_key(
            2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"}
        )
    )
    codes: dict[str, Code] = field(default_factory=dict)
    #: Token requests answered (the replay test counts them).
    token_requests: int = 0

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def settings(self, name: str = "test", **extra: Any) -> dict[str, Any]:
        """This provider as one entry of ``MEDIAPLANE_OIDC_PROVIDERS``."""
        return {
            "name": name,
            "discovery_url": self.discovery_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            **extra,
        }


def _grant(provider: Provider) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope,
                sub=request.user.sub,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found is not None and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> User:
            return User(authorization_code.sub)

    return CodeGrant


def _openid(provider: Provider) -> OpenIDCode:
    class Extension(OpenIDCode):  # type: ignore[misc]
        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(c.nonce == nonce for c in provider.codes.values())

        def resolve_client_private_key(self, client: Client) -> RSAKey:
            return provider.key

        def get_client_algorithm(self, client: Client) -> str:
            return "RS256"

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": str(provider.key.kid)}

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            now = int(time.time())
            return {"iss": provider.issuer, "aud": [client.client_id], "iat": now, "exp": now + 300}

        def generate_user_info(self, user: User, scope: str) -> UserInfo:
            claims = dict(provider.users.get(user.sub, {}))
            if "email" not in scope.split():
                claims.pop("email", None)
                claims.pop("email_verified", None)
            return UserInfo(sub=user.sub, **claims, **provider.id_token_overrides)

    return Extension(require_nonce=True)


class S256Only(CodeChallenge):  # type: ignore[misc]
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - Authlib's class attribute


_FORM = """<!doctype html><title>Sign in</title>
<form method="post"><input name="sub" placeholder="sub"><button>Authorize</button></form>"""


def _app(provider: Provider) -> flask.Flask:
    app = flask.Flask("oidc_provider")
    client = Client(provider.client_id, provider.client_secret)
    server = AuthorizationServer(
        app, query_client=lambda cid: client if cid == client.client_id else None
    )
    server.save_token = lambda token, request: None
    server.register_grant(_grant(provider), [S256Only(required=True), _openid(provider)])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        base = provider.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile"],
        }

    @app.get("/jwks")
    def jwks() -> Any:
        return {"keys": [provider.key.as_dict(private=False)]}

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Any:
        if flask.request.method == "GET":
            try:
                server.get_consent_grant(end_user=None)
            except Exception as exc:  # an invalid request: the error page a provider shows
                return f"invalid request: {exc}", 400
            return _FORM
        user = User(sub) if (sub := flask.request.form.get("sub", "")) else None
        grant = server.get_consent_grant(end_user=user)
        return server.create_authorization_response(grant_user=user, grant=grant)

    @app.post("/token")
    def token() -> Any:
        provider.token_requests += 1
        return server.create_token_response()

    return app


@contextmanager
def run_provider(**kw: Any) -> Iterator[Provider]:
    """A provider listening on a free 127.0.0.1 port until the block ends."""
    provider = Provider(**kw)
    httpd = werkzeug.serving.make_server("127.0.0.1", 0, _app(provider), threaded=True)
    provider.issuer = f"http://127.0.0.1:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield provider
    finally:
        httpd.shutdown()
        thread.join(5)
        httpd.server_close()
