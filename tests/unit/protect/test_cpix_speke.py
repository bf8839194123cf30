"""CPIX 2.3 documents (validated against the DASH-IF schema in ../shared/specs/cpix), their
content key encryption, and the SPEKE v2 client against a key server on loopback
(tests/speke_server.py, written without Mediaplane's code)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import xmlschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mediaplane.config import Settings
from mediaplane.db import Database, migrate
from mediaplane.media import common_pssh
from mediaplane.protect import (
    COMMON_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    CpixDocument,
    CpixError,
    CpixKey,
    DrmSignal,
    KeyStore,
    LocalKms,
    SpekeClient,
    SpekeError,
    provide_keys,
    signals_for,
)
from tests.speke_server import SpekeServer

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "cpix" / "cpix.xsd"


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))  # the official DASH-IF schema, kept in tests/data


def make_cert(bits: int = 2048) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediaplane test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def cert() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return make_cert()


def _doc() -> CpixDocument:
    keys = [
        CpixKey(kid=os.urandom(16), key=os.urandom(16), track_type=t, scheme="cbcs")
        for t in ("sd", "hd", "audio")
    ]
    systems = [DrmSignal(COMMON_SYSTEM_ID, k.kid, pssh=common_pssh([k.kid])) for k in keys]
    systems.append(
        DrmSignal(
            WIDEVINE_SYSTEM_ID,
            keys[0].kid,
            pssh=b"\x00\x00\x00\x20pssh" + bytes(24),
            content_protection_data=b"<cenc:pssh/>",
            hls_signaling={"media": b"#EXT-X-KEY:METHOD=SAMPLE-AES", "multiVariant": b"#X"},
        )
    )
    return CpixDocument(content_id="asset-1", keys=keys, systems=systems)


def test_clear_export_is_valid_cpix_and_round_trips(schema: xmlschema.XMLSchema) -> None:
    doc = _doc()
    xml = doc.render()
    schema.validate(xml.decode())
    back = CpixDocument.parse(xml)
    assert back == doc
    assert base64.b64encode(doc.keys[0].key or b"").decode() in xml.decode()


def test_encrypted_export_is_valid_and_only_our_key_opens_it(
    schema: xmlschema.XMLSchema, cert: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    doc = _doc()
    xml = doc.render(cert[0])
    schema.validate(xml.decode())
    for k in doc.keys:
        assert base64.b64encode(k.key or b"").decode() not in xml.decode()
    assert CpixDocument.parse(xml, cert[1]).keys == doc.keys
    with pytest.raises(CpixError, match="no private key"):
        CpixDocument.parse(xml)
    with pytest.raises(CpixError, match="does not decrypt"):
        CpixDocument.parse(xml, make_cert()[1])


def test_an_altered_encrypted_key_is_refused(
    cert: tuple[x509.Certificate, rsa.RSAPrivateKey],
) -> None:
    xml = _doc().render(cert[0]).decode()
    marker = "<enc:CipherValue>"
    # the third CipherValue is the first content key (after the document and MAC keys)
    at = [i for i in range(len(xml)) if xml.startswith(marker, i)][2] + len(marker)
    flipped = "A" if xml[at] != "A" else "B"
    with pytest.raises(CpixError, match="MAC does not match"):
        CpixDocument.parse((xml[:at] + flipped + xml[at + 1 :]).encode(), cert[1])


def test_weak_recipient_keys_and_hostile_documents_are_refused() -> None:
    with pytest.raises(CpixError, match="2048"):
        _doc().render(make_cert(1024)[0])
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix">&b;</cpix:CPIX>'
    )
    for bad, match in [
        (bomb, "DTD"),
        (b"<x/>", "root"),
        (b"<cpix:CPIX", "well-formed"),
        (b"x" * (1024 * 1024 + 1), "at most"),
        (
            b'<cpix:CPIX xmlns:cpix="urn:dashif:org:cpix"><cpix:ContentKeyList>'
            b'<cpix:ContentKey kid="nope"/></cpix:ContentKeyList></cpix:CPIX>',
            "not a UUID",
        ),
    ]:
        with pytest.raises(CpixError, match=match):
            CpixDocument.parse(bad)


@pytest.fixture(scope="module")
def speke() -> Iterator[tuple[SpekeServer, str]]:
    server = SpekeServer()
    url = server.start()
    yield server, url
    server.stop()


def _wanted() -> list[CpixKey]:
    return [CpixKey(kid=os.urandom(16), track_type=t, scheme="cenc") for t in ("hd", "audio")]


def test_speke_request_is_valid_cpix_and_gets_the_providers_keys(
    speke: tuple[SpekeServer, str], schema: xmlschema.XMLSchema
) -> None:
    server, url = speke
    wanted = _wanted()
    got = SpekeClient(url).request("asset-s", wanted, [WIDEVINE_SYSTEM_ID])
    schema.validate(server.requests[-1].decode())
    assert {k.kid: k.key for k in got.keys} == {k.kid: server.keys[k.kid] for k in wanted}
    widevine = [s for s in got.systems if s.system_id == WIDEVINE_SYSTEM_ID]
    assert len(widevine) == 2
    assert all(s.pssh and s.pssh[4:8] == b"pssh" and s.kid in s.pssh for s in widevine)
    assert all(s.hls_signaling.get("media") for s in widevine)


def test_speke_content_key_encryption(
    speke: tuple[SpekeServer, str], cert: tuple[x509.Certificate, rsa.RSAPrivateKey]
) -> None:
    server, url = speke
    wanted = _wanted()
    client = SpekeClient(url, certificate=cert[0], private_key=cert[1])
    got = client.request("asset-e", wanted, [WIDEVINE_SYSTEM_ID])
    body = server.requests[-1].decode()
    assert "X509Certificate" in body and "DocumentKey" not in body  # the provider makes it
    assert {k.kid: k.key for k in got.keys} == {k.kid: server.keys[k.kid] for k in wanted}


def test_speke_refusals_say_why(speke: tuple[SpekeServer, str]) -> None:
    server, url = speke
    server.fail_with = (422, "Missing CPIX@contentId")
    try:
        with pytest.raises(SpekeError, match="422: Missing CPIX@contentId"):
            SpekeClient(url).request("x", _wanted(), [])
    finally:
        server.fail_with = None
    mixed = [
        CpixKey(os.urandom(16), None, "sd", "cenc"),
        CpixKey(os.urandom(16), None, "hd", "cbcs"),
    ]
    with pytest.raises(SpekeError, match="combination"):
        SpekeClient(url).request("x", mixed, [])
    with pytest.raises(SpekeError, match="cannot be reached"):
        SpekeClient("http://127.0.0.1:9/none", timeout=2).request("x", _wanted(), [])


def test_packaging_gets_keys_from_the_key_provider_once(
    speke: tuple[SpekeServer, str],
    cert: tuple[x509.Certificate, rsa.RSAPrivateKey],
    tmp_path: Path,
) -> None:
    server, url = speke
    pem = tmp_path / "speke.pem"
    pem.write_bytes(
        cert[0].public_bytes(serialization.Encoding.PEM)
        + cert[1].private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    db_url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    migrate(db_url)
    db = Database(db_url)
    store = KeyStore(db, LocalKms(os.urandom(32)))
    settings = Settings(
        data_dir=tmp_path, speke_url=url, speke_cert_file=pem, speke_systems="widevine"
    )
    before = len(server.requests)
    keys = provide_keys(store, settings, "asset-p", ["sd", "audio"], "cbcs")
    assert sorted(keys) == ["audio", "sd"]
    assert all(k.origin == "speke" and server.keys[k.kid] == k.key for k in keys.values())
    assert provide_keys(store, settings, "asset-p", ["sd", "audio"], "cbcs") == keys
    assert len(server.requests) == before + 1
    stored = signals_for(db, [k.kid for k in keys.values()])
    assert {s.system_id for s in stored} == {WIDEVINE_SYSTEM_ID}
    assert all(s.pssh and uuid.UUID(WIDEVINE_SYSTEM_ID).bytes in s.pssh for s in stored)
    local = provide_keys(store, Settings(data_dir=tmp_path), "asset-l", ["all"], "cenc")
    assert local["all"].origin == "generated"
