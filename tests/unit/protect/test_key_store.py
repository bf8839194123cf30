"""The key store on a real database: envelope encryption, per-track keys, rotation, import,
KEK rewrap; the local master key file; AWS KMS through moto's KMS server on loopback."""

from __future__ import annotations

import base64
import os
import stat
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from mediaplane.config import Settings
from mediaplane.db import Database, migrate
from mediaplane.protect import (
    AwsKms,
    ContentKeyRow,
    InvalidKey,
    KeyNotFound,
    KeyStore,
    KmsError,
    LocalKms,
    open_kms,
    parse_kid,
    record_release,
    releases,
    track_type_for,
)
from tests.support import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    url = f"sqlite:///{tmp_path_factory.mktemp('keys') / 'k.sqlite'}"
    migrate(url)
    return Database(url)


@pytest.fixture
def store(db: Database) -> KeyStore:
    return KeyStore(db, LocalKms(os.urandom(32)))


def test_keys_are_made_per_track_type_and_stored_only_wrapped(
    store: KeyStore, db: Database
) -> None:
    keys = store.ensure_keys("asset-a", ["sd", "hd", "audio"])
    assert sorted(keys) == ["audio", "hd", "sd"]
    assert len({k.kid for k in keys.values()}) == 3
    assert all(len(k.key) == 16 and len(k.kid) == 16 for k in keys.values())
    assert store.ensure_keys("asset-a", ["sd", "hd", "audio"]) == keys  # no new keys
    with db.session() as s:
        rows = list(s.scalars(select(ContentKeyRow).where(ContentKeyRow.asset_id == "asset-a")))
    assert len(rows) == 3
    for row in rows:
        assert keys[row.track_type].key not in row.wrapped
    assert "key=" not in repr(keys["hd"])  # never in a repr, so never in a log line
    got = store.get(keys["hd"].kid)
    assert got.key == keys["hd"].key and got.asset_id == "asset-a"


def test_rotation_keeps_old_keys_for_what_references_them(store: KeyStore) -> None:
    old = store.ensure_keys("asset-r", ["all"])["all"]
    new = store.rotate("asset-r", ["all"])["all"]
    assert new.kid != old.kid and new.key != old.key
    assert store.current_keys("asset-r") == {"all": new}
    again = store.get(old.kid)
    assert again.key == old.key and again.retired_at is not None
    assert [k for k, _, _ in store.asset_kids("asset-r")] == [old.kid_hex, new.kid_hex]


def test_imported_key_replaces_the_current_one(store: KeyStore) -> None:
    store.ensure_keys("asset-i", ["sd"])
    kid, key = os.urandom(16), os.urandom(16)
    got = store.put("asset-i", "sd", kid, key, "cpix")
    assert store.current_keys("asset-i")["sd"] == got
    assert got.key == key and got.origin == "cpix"
    with pytest.raises(InvalidKey, match="in use"):
        store.put("asset-other", "sd", kid, os.urandom(16), "cpix")
    with pytest.raises(InvalidKey, match="track type"):
        store.put("asset-i", "uhd", os.urandom(16), os.urandom(16), "cpix")
    with pytest.raises(InvalidKey, match="16 bytes"):
        store.put("asset-i", "sd", os.urandom(8), os.urandom(16), "cpix")


def test_a_wrapped_key_moved_to_another_kid_does_not_decrypt(store: KeyStore, db: Database) -> None:
    a = store.ensure_keys("asset-t1", ["all"])["all"]
    b = store.ensure_keys("asset-t2", ["all"])["all"]
    with db.session() as s:
        wrapped_a = s.get(ContentKeyRow, a.kid_hex).wrapped  # type: ignore[union-attr]
        s.execute(
            update(ContentKeyRow).where(ContentKeyRow.kid == b.kid_hex).values(wrapped=wrapped_a)
        )
    with pytest.raises(InvalidKey, match="does not decrypt"):
        store.get(b.kid)
    with pytest.raises(KeyNotFound):
        store.get(os.urandom(16))


def test_rewrap_moves_every_key_under_a_new_kek(store: KeyStore, db: Database) -> None:
    keys = store.ensure_keys("asset-w", ["sd", "audio"])
    assert store.rewrap() >= 2
    fresh = KeyStore(db, store.kms)  # a new process: nothing unwrapped yet
    for k in keys.values():
        assert fresh.get(k.kid).key == k.key


def test_another_master_key_cannot_read_the_keys(store: KeyStore, db: Database) -> None:
    k = store.ensure_keys("asset-m", ["all"])["all"]
    with pytest.raises(KmsError, match="master key"):
        KeyStore(db, LocalKms(os.urandom(32)))._kek(db.sessions(), _kek_id(db, k.kid_hex))


def _kek_id(db: Database, kid_hex: str) -> int:
    with db.session() as s:
        return s.get(ContentKeyRow, kid_hex).kek_id  # type: ignore[union-attr]


def test_master_key_file_is_made_once_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = LocalKms.from_settings(settings)
    path = tmp_path / "master-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalKms.from_settings(settings).name == first.name
    blob = first.wrap(b"x" * 32)
    assert LocalKms.from_settings(settings).unwrap(blob) == b"x" * 32
    assert not list(tmp_path.glob(".master-key.*"))


def test_master_key_from_the_environment_and_bad_ones(tmp_path: Path) -> None:
    raw = os.urandom(32)
    kms = open_kms(Settings(data_dir=tmp_path, master_key=base64.b64encode(raw).decode()))
    assert kms.unwrap(LocalKms(raw).wrap(b"k" * 32)) == b"k" * 32
    assert not (tmp_path / "master-key").exists()
    with pytest.raises(KmsError, match="32"):
        open_kms(Settings(data_dir=tmp_path, master_key=base64.b64encode(b"short").decode()))
    with pytest.raises(KmsError, match="base64"):
        open_kms(Settings(data_dir=tmp_path, master_key="not base64!"))
    with pytest.raises(KmsError, match="scheme"):
        open_kms(Settings(data_dir=tmp_path, kms_url="vault://x"))


def test_kid_forms_and_track_types() -> None:
    kid = os.urandom(16)
    import uuid

    u = str(uuid.UUID(bytes=kid))
    b64 = base64.urlsafe_b64encode(kid).rstrip(b"=").decode()
    assert parse_kid(kid.hex()) == parse_kid(u) == parse_kid(b64) == kid
    for bad in ["", "zz", "a" * 31, "A" * 40, "!" * 22]:
        with pytest.raises(InvalidKey):
            parse_kid(bad)
    assert track_type_for("video", 1080, True) == "hd"
    assert track_type_for("video", 480, True) == "sd"
    assert track_type_for("audio", None, True) == "audio"
    assert track_type_for("video", 1080, False) == "all"


def test_releases_are_audited_without_keys(store: KeyStore, db: Database) -> None:
    k = store.ensure_keys("asset-audit", ["all"])["all"]
    record_release(
        db,
        kid=k.kid_hex,
        asset_id="asset-audit",
        playback_id="pb1",
        principal="anonymous",
        channel="clearkey",
        granted=False,
        reason="not_entitled",
        address="127.0.0.0/24",
    )
    (row,) = releases(db, asset_id="asset-audit")
    assert (row.kid, row.granted, row.reason) == (k.kid_hex, False, "not_entitled")
    assert k.key.hex() not in repr(vars(row))


@pytest.fixture(scope="module")
def moto_kms() -> Iterator[str]:
    """moto's KMS server on loopback: the AWS KMS API, Encrypt/Decrypt checked by key."""
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_aws_kms_wraps_the_kek(
    moto_kms: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    kms_client = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_kms)
    key_id = kms_client.create_key(Description="mediaplane test")["KeyMetadata"]["KeyId"]
    kms = open_kms(Settings(kms_url=f"aws-kms://{key_id}?region=us-east-1&endpoint={moto_kms}"))
    assert isinstance(kms, AwsKms)
    store = KeyStore(db, kms)
    k = store.ensure_keys("asset-aws", ["all"])["all"]
    assert KeyStore(db, kms).get(k.kid).key == k.key
    wrong = AwsKms("no-such-key", region="us-east-1", endpoint=moto_kms)
    with pytest.raises(KmsError, match="refused"):
        wrong.wrap(b"x" * 32)
