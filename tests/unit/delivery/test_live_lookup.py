"""LiveOrigin's lookup on the VOD path: an id the VOD lookup cache holds is never looked up
as live; one found not live is looked up once, then known for NOT_LIVE_TTL; a live one
(for LOOKUP_TTL) is answered by the live origin, not passed through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mediaplane.accounts import INSTALL
from mediaplane.delivery import _live, _service
from mediaplane.delivery._live import LiveOrigin
from mediaplane.live import create_live_stream
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path_factory.mktemp("lookup")) as runtime:
        yield runtime


class _Vod:
    """The VOD origin behind: counts what reaches it, answers 200."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _get(origin: LiveOrigin, rt: Runtime, path: str) -> int:
    app = type("App", (), {"state": type("State", (), {"runtime": rt})()})()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b""}
    await origin({**scope, "headers": [], "app": app}, receive, send)
    status: int = sent[0]["status"]
    return status


async def test_vod_ids_cost_no_live_lookup(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    looked: list[str] = []
    real = _live.resolve_live_playback

    def spy(source: Any, playback_id: str) -> Any:
        looked.append(playback_id)
        return real(source, playback_id)

    monkeypatch.setattr(_live, "resolve_live_playback", spy)
    vod = _Vod()
    origin = LiveOrigin(vod, [])
    held = "heldbythevodcache0000000000000001"
    monkeypatch.setattr(_service._lookups, "items", _service._lookups.items.copy())
    _service._lookups.put(held, object(), 60)  # type: ignore[arg-type]  # gone after the test
    unseen = "notliveanywhere00000000000000001"
    for _ in range(3):
        assert await _get(origin, rt, f"/play/{held}/v1/media.m3u8") == 200
        assert await _get(origin, rt, f"/play/{unseen}/v1/media.m3u8") == 200
    assert looked == [unseen] and vod.calls == 6  # looked up once, then known not live

    live = create_live_stream(rt, INSTALL)["playback_ids"][0]["id"]
    assert await _get(origin, rt, f"/play/{live}/master.m3u8") == 404  # not live now
    assert await _get(origin, rt, f"/play/{live}/master.m3u8") == 404
    assert looked == [unseen, live] and vod.calls == 6
