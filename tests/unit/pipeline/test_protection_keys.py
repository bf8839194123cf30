"""The packaging step's keys with a SPEKE key provider configured: the provider's keys and
its Widevine PSSH reach the packager's data; AES-128 (no Common Encryption scheme for the
provider) keeps keys made here. Real SQLite, the SPEKE v2 server of tests/speke_server.py."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from mediaplane.config import Settings
from mediaplane.db import migrate
from mediaplane.pipeline._protection import encryption_for
from mediaplane.runtime import Runtime
from tests.speke_server import WIDEVINE, SpekeServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def speke() -> Iterator[tuple[SpekeServer, str]]:
    server = SpekeServer()
    url = server.start()
    yield server, url
    server.stop()


def test_key_provider_keys_and_pssh_reach_the_packager(
    speke: tuple[SpekeServer, str], tmp_path: Path
) -> None:
    server, url = speke
    settings = Settings(data_dir=tmp_path, speke_url=url, speke_systems="widevine")
    migrate(settings.effective_database_url)
    rt = Runtime(settings)
    tracks = [("v360", "video", 360), ("v1080", "video", 1080), ("audio", "audio", None)]
    enc = encryption_for(rt, "asset-1", "cbcs", tracks)
    assert enc is not None and enc.scheme == "cbcs"
    assert {r: k.label for r, k in enc.keys.items()} == {
        "v360": "SD",
        "v1080": "HD",
        "audio": "AUDIO",
    }
    assert all(server.keys[k.kid] == k.key for k in enc.keys.values())
    kids = {k.kid for k in enc.keys.values()}
    assert {b.kid for b in enc.systems} == kids
    assert all(b.system_id == WIDEVINE and uuid.UUID(WIDEVINE).bytes in b.pssh for b in enc.systems)
    assert encryption_for(rt, "asset-1", "cbcs", tracks) == enc  # asked once
    assert len(server.requests) == 1
    again = encryption_for(rt, "asset-1", "cbcs", tracks, rotate=True)  # a re-package
    assert again is not None and {k.kid for k in again.keys.values()}.isdisjoint(kids)
    assert len(server.requests) == 2
    aes = encryption_for(rt, "asset-2", "aes-128", tracks)
    assert aes is not None and not aes.systems
    assert all(k.kid not in server.keys for k in aes.keys.values())
    assert encryption_for(rt, "asset-3", "none", tracks) is None
