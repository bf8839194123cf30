"""mediaplane.client against a real server: tus upload with progress, resume after an
interrupted run, waiting for the whole ladder, bulk import, and API errors as typed
exceptions."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from mediaplane.client import (
    Asset,
    Client,
    RequestFailed,
    TokenRefused,
    Unreachable,
    UploadState,
    ladder_done,
)
from mediaplane.ingest import open_library
from tests.support import Server, free_port, make_clip

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

CHUNK = 64 << 10  # bytes per PATCH: the 2 s clip takes several


@pytest.fixture(scope="module")
def mp(sqlite_server: Server) -> Iterator[Client]:
    with Client(sqlite_server.url, sqlite_server.token) as client:
        yield client


@pytest.fixture(scope="module")
def clip() -> Path:
    path = make_clip("client-2s.mp4", seconds=2, size="640x360")
    assert path.stat().st_size > 3 * CHUNK  # several chunks
    return path


@pytest.fixture(scope="module")
def uploaded(mp: Client, clip: Path) -> tuple[str, list[int]]:
    """The clip uploaded in small chunks: (asset id, each progress report)."""
    seen: list[int] = []
    upload = mp.upload(
        clip,
        title="client upload",
        chunk_size=CHUNK,
        on_progress=lambda done, total: seen.append(done),
    )
    assert upload["status"] == "asset_created", upload
    assert upload["asset_id"]
    return upload["asset_id"], seen


class Interrupted(Exception):
    """Stands in for Ctrl-C in the middle of an upload."""


def test_upload_reports_progress_up_to_the_size(
    uploaded: tuple[str, list[int]], clip: Path
) -> None:
    _, seen = uploaded
    size = clip.stat().st_size
    assert seen == sorted(seen) and seen[-1] == size
    assert len(seen) >= 4  # one report per piece at least


def test_an_interrupted_upload_resumes_where_it_stopped(
    mp: Client, clip: Path, tmp_path: Path
) -> None:
    state = UploadState(tmp_path / "uploads.json")
    size = clip.stat().st_size
    first = mp.start_upload(clip, title="resumed", state=state)
    assert not first.resumed and first.offset == 0

    def cut_off(done: int, total: int) -> None:
        if done > 2 * CHUNK:  # inside the third PATCH: two chunks are on the server
            raise Interrupted

    with pytest.raises(Interrupted):
        first.send(chunk_size=CHUNK, on_progress=cut_off)
    assert state.get(UploadState.key(mp.base_url, clip)) == first.url

    again = mp.start_upload(clip, title="resumed", state=state)
    assert again.resumed and again.url == first.url
    start = again.offset
    assert 2 * CHUNK <= start < size
    seen: list[int] = []
    upload = again.send(chunk_size=CHUNK, on_progress=lambda done, total: seen.append(done))
    assert upload["status"] == "asset_created", upload
    assert seen[0] > start and seen[-1] == size  # only the rest was sent
    assert state.get(UploadState.key(mp.base_url, clip)) is None  # done: nothing to resume
    asset = mp.wait(upload["asset_id"] or "", timeout=180)
    assert asset["status"] == "ready", asset
    assert asset["content_hash"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert mp.update_asset(asset["id"], title="renamed")["title"] == "renamed"
    mp.delete_asset(asset["id"])
    with pytest.raises(RequestFailed) as gone:
        mp.get_asset(asset["id"])
    assert gone.value.status == 404


def test_wait_returns_the_whole_ladder(mp: Client, uploaded: tuple[str, list[int]]) -> None:
    updates: list[Asset] = []
    asset = mp.wait(uploaded[0], on_update=updates.append, interval=0.2, timeout=180)
    assert updates[-1] == asset and ladder_done(asset)
    assert asset["status"] == "ready" and asset["progress"] == 100
    renditions = asset["renditions"]
    assert renditions and all(r["status"] == "ready" for r in renditions)
    assert asset["playback"]["hls"].endswith("/master.m3u8")
    assert mp.get_asset(uploaded[0])["id"] == uploaded[0]


def test_a_4xx_is_a_typed_error_with_the_apis_code_and_message(
    mp: Client, sqlite_server: Server
) -> None:
    with pytest.raises(RequestFailed) as missing:
        mp.get_asset("no-such-asset")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert "no-such-asset" in missing.value.message
    with pytest.raises(RequestFailed) as bad:
        mp.list_assets(content_hash="abc")
    assert bad.value.status == 400 and bad.value.code == "invalid_request"
    with pytest.raises(RequestFailed) as refused_url:
        mp.import_url("http://127.0.0.1/private.mp4")  # loopback: not a place to fetch from
    assert refused_url.value.status == 400 and refused_url.value.code == "url_refused"
    with Client(sqlite_server.url, "wrong") as stranger, pytest.raises(TokenRefused) as refused:
        stranger.list_assets()
    assert refused.value.status == 401 and refused.value.code == "unauthorized"
    assert "not valid" in refused.value.message
    assert str(refused.value) == f"HTTP 401: {refused.value.message} (unauthorized)"
    with Client(f"http://127.0.0.1:{free_port()}", "t") as nobody, pytest.raises(Unreachable):
        nobody.get_asset("x")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.bytes = 0.0

    def begin(self, files: int, total_bytes: int) -> None:
        self.calls.append(("begin", files, total_bytes))

    def file(self, index: int, name: str, action: str) -> None:
        self.calls.append(("file", index, name, action))

    def advance(self, nbytes: float) -> None:
        self.bytes += nbytes


def test_import_library_skips_what_the_server_has(
    mp: Client, clip: Path, uploaded: tuple[str, list[int]], tmp_path: Path
) -> None:
    lib = tmp_path / "library"
    lib.mkdir()
    (lib / "again.mp4").write_bytes(clip.read_bytes())
    (lib / "empty.mkv").write_bytes(b"")
    (lib / "notes.txt").write_text("not a video")
    reporter = Recorder()
    summary = mp.import_library(open_library(str(lib)), reporter)
    assert summary.imported == []
    assert summary.failed == [("empty.mkv", "the file is empty")]
    [(name, why)] = summary.skipped
    assert name == "again.mp4" and why.startswith("already in as asset ")
    assert reporter.calls[0] == ("begin", 2, clip.stat().st_size)
    assert reporter.bytes == clip.stat().st_size  # a skipped file counts whole


def _asset(status: str, progress: float, *states: str) -> Asset:
    return {
        "status": status,
        "progress": progress,
        "renditions": [{"id": f"r{i}", "status": s} for i, s in enumerate(states)],
    }


def test_wait_ends_with_the_whole_ladder_not_the_first_rung() -> None:
    assert not ladder_done(_asset("preparing", 10, "preparing"))
    assert not ladder_done(_asset("ready", 40, "ready", "preparing", "preparing"))
    assert ladder_done(_asset("ready", 100, "ready", "ready", "ready"))
    assert ladder_done(_asset("errored", 30))
