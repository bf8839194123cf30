"""What a signed live id's answers carry: the carry token on every URI of the master and the
media playlists (segments, parts, map, preload hint, rendition reports), and the height cap
(variants above it left out of the master, their rungs refused, the lowest always kept)."""

from __future__ import annotations

from pathlib import Path

from mediaplane.delivery._live import _carrying, _master, _rung_heights, _within
from mediaplane.media import MasterPlaylist, MediaPlaylist

MASTER = b"""#EXTM3U
#EXT-X-VERSION:7
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aac",NAME="audio",DEFAULT=YES,URI="audio/index.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",AUDIO="aac"
hd/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",AUDIO="aac"
sd/index.m3u8
"""

MEDIA = b"""#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.334
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002
#EXT-X-MEDIA-SEQUENCE:4
#EXT-X-MAP:URI="init.mp4"
#EXT-X-PART:DURATION=0.334,URI="4.0.m4s",INDEPENDENT=YES
#EXTINF:2.0,
4.m4s
#EXT-X-PART:DURATION=0.334,URI="5.0.m4s",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="5.1.m4s"
#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=5,LAST-PART=0
"""

Q = "?st=1700000000.0.abc_-DEF"


def test_every_uri_carries_the_token() -> None:
    playlist = MediaPlaylist.parse(_carrying(MEDIA, Q).decode())
    uris = [s.uri for s in playlist.segments if s.uri]
    uris += [p.uri for s in playlist.segments for p in s.parts]
    uris += [s.map.uri for s in playlist.segments if s.map]
    uris += [h.uri for h in playlist.preload_hints] + [r.uri for r in playlist.rendition_reports]
    assert len(uris) == 6 and all(u.endswith(Q) for u in uris)
    assert _carrying(MEDIA, "") is MEDIA  # a public id's playlist is the packager's bytes


def test_the_master_carries_the_token_and_obeys_the_cap() -> None:
    full = MasterPlaylist.parse(_master(MASTER, "sess1", Q).decode())
    assert [v.uri for v in full.variants] == [f"sess1/hd/index.m3u8{Q}", f"sess1/sd/index.m3u8{Q}"]
    assert [m.uri for m in full.media] == [f"sess1/audio/index.m3u8{Q}"]
    capped = MasterPlaylist.parse(_master(MASTER, "sess1", Q, 480).decode())
    assert [v.uri for v in capped.variants] == [f"sess1/sd/index.m3u8{Q}"]
    lowest = MasterPlaylist.parse(_master(MASTER, "sess1", Q, 144).decode())
    assert [v.uri for v in lowest.variants] == [f"sess1/sd/index.m3u8{Q}"]


def test_rungs_above_the_cap_are_refused(tmp_path: Path) -> None:
    (tmp_path / "master.m3u8").write_bytes(MASTER)
    heights = _rung_heights(tmp_path / "master.m3u8")
    assert heights == {"hd": 720, "sd": 360}
    assert not _within(heights, "hd", 480)
    assert _within(heights, "sd", 480) and _within(heights, "audio", 480)
    assert _within(heights, "sd", 144)  # the lowest always plays
    assert _rung_heights(tmp_path / "missing.m3u8") == {}
