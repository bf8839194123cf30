"""Accounts over HTTP on a real `mediaplane up`: signing keys, API keys, app tokens, and
`mediaplane admin create-user`."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import Server, embedded_backend, start_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("accounts-api"), embedded_backend())
    try:
        yield server
    finally:
        server.stop()


def _anon(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def _as(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"})


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    assert r.json()["error"]["message"]


def _create_user(
    server: Server, email: str, password: str, role: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mediaplane",
            "admin",
            "create-user",
            email,
            "--role",
            role,
            "--password-stdin",
        ],
        input=password + "\n",
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_key_routes_need_the_admin(srv: Server) -> None:
    with _anon(srv) as c:
        for method, path in (
            ("POST", "/api/v1/signing-keys"),
            ("GET", "/api/v1/signing-keys"),
            ("DELETE", "/api/v1/signing-keys/x"),
            ("POST", "/api/v1/api-keys"),
            ("GET", "/api/v1/api-keys"),
            ("DELETE", "/api/v1/api-keys/x"),
        ):
            _error(c.request(method, path), 401, "unauthorized")
    with _as(srv, "mpk_made_up") as c:
        _error(c.get("/api/v1/api-keys"), 401, "unauthorized")


def test_signing_keys(srv: Server) -> None:
    with srv.client() as c:
        r = c.post("/api/v1/signing-keys")
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        private = serialization.load_pem_private_key(base64.b64decode(data["private_key"]), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        listed = c.get("/api/v1/signing-keys").json()["data"]
        assert data["id"] in [k["id"] for k in listed]
        assert all("private_key" not in k for k in listed)
        assert c.delete(f"/api/v1/signing-keys/{data['id']}").status_code == 204
        assert data["id"] not in [k["id"] for k in c.get("/api/v1/signing-keys").json()["data"]]
        _error(c.delete("/api/v1/signing-keys/no-such-key"), 404, "not_found")


def _new_key(srv: Server, **body: Any) -> dict[str, Any]:
    with srv.client() as c:
        r = c.post("/api/v1/api-keys", json=body)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def test_api_keys(srv: Server) -> None:
    admin = _new_key(srv, scope="admin", name="ops")
    write = _new_key(srv, scope="write", name="ci")
    assert admin["key"].startswith(admin["prefix"] + "_")
    with _as(srv, admin["key"]) as c:  # an admin key does what the admin token does
        listed = c.get("/api/v1/api-keys").json()["data"]
        assert c.get("/api/v1/assets").status_code == 200
    by_id = {k["id"]: k for k in listed}
    assert by_id[admin["id"]]["prefix"] == admin["prefix"] and "key" not in by_id[admin["id"]]
    assert by_id[admin["id"]]["last_used_at"] is not None
    adopted = [k for k in listed if k["source"] == "admin_token"]
    assert len(adopted) == 1 and adopted[0]["scope"] == "admin"
    assert srv.token not in str(listed)
    with _as(srv, write["key"]) as c:  # narrower scope: refused, and says why
        _error(c.get("/api/v1/api-keys"), 403, "insufficient_scope")
        # a key of the install's own servers: write covers read (the authorization matrix,
        # tests/integration/test_authz_matrix.py, has every route and scope)
        assert c.get("/api/v1/assets").status_code == 200
    read = _new_key(srv, scope="read", name="dashboard")
    with _as(srv, read["key"]) as c:
        _error(c.patch("/api/v1/assets/x", json={"title": "t"}), 403, "insufficient_scope")
    with srv.client() as c:
        assert c.delete(f"/api/v1/api-keys/{admin['id']}").status_code == 204
        _error(c.delete("/api/v1/api-keys/no-such-key"), 404, "not_found")
        revoked = c.get("/api/v1/api-keys", params={"include_revoked": "true"}).json()["data"]
    assert any(k["id"] == admin["id"] and k["revoked_at"] for k in revoked)
    with _as(srv, admin["key"]) as c:
        _error(c.get("/api/v1/api-keys"), 401, "unauthorized")


def test_api_key_bad_input(srv: Server) -> None:
    with srv.client() as c:
        _error(c.post("/api/v1/api-keys", json={"scope": "root"}), 400, "invalid_request")
        _error(c.post("/api/v1/api-keys", json={"scope": "read", "x": 1}), 400, "invalid_request")
        _error(c.post("/api/v1/api-keys", json={}), 400, "invalid_request")
        _error(
            c.post("/api/v1/api-keys", json={"scope": "read", "user_id": "nobody"}),
            400,
            "invalid_user",
        )
        bad = c.post(
            "/api/v1/api-keys", content=b"{not json", headers={"content-type": "application/json"}
        )
        _error(bad, 400, "invalid_request")
        _error(c.post("/api/v1/api-keys", data={"scope": "read"}), 415, "unsupported_media_type")
        big = b'{"scope": "read", "name": "' + b"n" * 100_000 + b'"}'
        r = c.post("/api/v1/api-keys", content=big, headers={"content-type": "application/json"})
        _error(r, 413, "payload_too_large")


def test_create_user_then_tokens_rotate_and_reuse_signs_out(srv: Server) -> None:
    made = _create_user(srv, "Admin@Example.org", "correct horse battery", "admin")
    assert made.returncode == 0, made.stderr
    assert "admin admin@example.org" in made.stdout
    again = _create_user(srv, "admin@example.org", "another password", "viewer")
    assert again.returncode == 1 and "exists already" in again.stderr + again.stdout
    weak = _create_user(srv, "weak@example.org", "short", "viewer")
    assert weak.returncode == 1

    with _anon(srv) as c:
        wrong = c.post(
            "/api/v1/auth/token", json={"email": "admin@example.org", "password": "nope-nope"}
        )
        unknown = c.post(
            "/api/v1/auth/token", json={"email": "who@example.org", "password": "nope-nope"}
        )
        _error(wrong, 401, "invalid_credentials")
        _error(unknown, 401, "invalid_credentials")
        assert wrong.json() == unknown.json()
        r = c.post(
            "/api/v1/auth/token",
            json={"email": "ADMIN@example.org", "password": "correct horse battery"},
        )
        assert r.status_code == 200, r.text
        first = r.json()["data"]
        assert first["token_type"] == "Bearer" and first["expires_in"] > 0
        assert first["access_token"].count(".") == 2
        r = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200, r.text
        second = r.json()["data"]
        assert second["refresh_token"] != first["refresh_token"]
        # the first token again: reuse; the family (second included) is signed out
        reuse = c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        _error(reuse, 401, "refresh_token_reused")
        after = c.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        _error(after, 401, "invalid_token")
        for body in ({"refresh_token": "mprt_x"}, {"refresh_token": "x" * 200}, {}):
            assert c.post("/api/v1/auth/refresh", json=body).status_code in (400, 401)
        _error(c.post("/api/v1/auth/token", json={"email": "a"}), 400, "invalid_request")
