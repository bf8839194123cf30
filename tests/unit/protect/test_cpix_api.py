"""/api/v1/assets/{id}/cpix on the real app (in process, real SQLite): export in the clear
and encrypted (both valid against the DASH-IF schema), import, refusals, and the audit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from mediaplane.app import create_app
from mediaplane.catalog import Asset
from mediaplane.config import Settings
from mediaplane.db import migrate
from mediaplane.protect import CpixDocument, CpixKey, releases
from mediaplane.runtime import Runtime
from tests.unit.protect.test_cpix_speke import SCHEMA, make_cert

if TYPE_CHECKING:
    import os

ADMIN = {"Authorization": "Bearer admin-t"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, Runtime]:
    data: os.PathLike[str] = tmp_path_factory.mktemp("cpix-api")
    settings = Settings(data_dir=Path(data), admin_token="admin-t")
    migrate(settings.effective_database_url)
    client = TestClient(create_app(settings))
    rt = Runtime.get(settings)
    with rt.db.session() as s:
        s.add(Asset(id="asset-k", title="keys"))
        s.add(Asset(id="asset-none", title="no keys"))
    return client, rt


def test_export_in_the_clear_and_encrypted(app: tuple[TestClient, Runtime]) -> None:
    client, rt = app
    keys = rt.keys.ensure_keys("asset-k", ["sd", "hd", "audio"])
    schema = xmlschema.XMLSchema(str(SCHEMA))
    r = client.get("/api/v1/assets/asset-k/cpix", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert r.headers["cache-control"] == "no-store"
    schema.validate(r.text)
    doc = CpixDocument.parse(r.content)
    assert {k.track_type: k.key for k in doc.keys} == {t: k.key for t, k in keys.items()}
    cert, private = make_cert()
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    r = client.post("/api/v1/assets/asset-k/cpix/export", json={"certificate": pem}, headers=ADMIN)
    assert r.status_code == 200, r.text
    schema.validate(r.text)
    assert CpixDocument.parse(r.content, private).keys == doc.keys
    audit = releases(rt.db, asset_id="asset-k")
    assert len(audit) == 6 and all(a.channel == "cpix" and a.granted for a in audit)


def test_import_replaces_the_keys_of_each_track_type(app: tuple[TestClient, Runtime]) -> None:
    client, rt = app
    old = rt.keys.ensure_keys("asset-k", ["sd", "hd", "audio"])
    new = CpixDocument("asset-k", [CpixKey(b"\x01" * 16, b"\x02" * 16, "hd", "cenc")])
    r = client.put("/api/v1/assets/asset-k/cpix", content=new.render(), headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["keys"] == [{"kid": "01" * 16, "track_type": "hd"}]
    assert r.json()["data"]["repackaging"] is False  # a clear asset keeps them for later
    now = rt.keys.current_keys("asset-k")
    assert now["hd"].key == b"\x02" * 16 and now["hd"].origin == "cpix"
    assert now["sd"] == old["sd"]
    assert rt.keys.get(old["hd"].kid).retired_at is not None  # kept for what used it


def test_refusals(app: tuple[TestClient, Runtime]) -> None:
    client, _ = app
    assert client.get("/api/v1/assets/asset-k/cpix").status_code == 401
    assert client.get("/api/v1/assets/nope/cpix", headers=ADMIN).status_code == 404
    r = client.get("/api/v1/assets/asset-none/cpix", headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_keys"
    r = client.put("/api/v1/assets/asset-k/cpix", content=b"<nope", headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cpix"
    keyless = CpixDocument("asset-k", [CpixKey(b"\x03" * 16, None, "sd")]).render()
    r = client.put("/api/v1/assets/asset-k/cpix", content=keyless, headers=ADMIN)
    assert r.status_code == 400
    weak = make_cert(1024)[0].public_bytes(serialization.Encoding.PEM).decode()
    r = client.post("/api/v1/assets/asset-k/cpix/export", json={"certificate": weak}, headers=ADMIN)
    assert r.status_code == 400 and "2048" in r.json()["error"]["message"]
    r = client.post(
        "/api/v1/assets/asset-k/cpix/export", json={"certificate": "junk"}, headers=ADMIN
    )
    assert r.status_code == 400
