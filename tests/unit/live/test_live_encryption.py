"""A protected live output on real fMP4 (ffmpeg's, as the live packager writes it): cbcs
segments and LL-HLS parts encrypted by our CENC writer with a key per epoch of two
segments, each epoch's own init segment (tenc KID), EXT-X-KEY/EXT-X-MAP where the key
changes, a DASH Period per epoch with its ContentProtection; and ffmpeg decrypting each
epoch's segments with its key to the frames of the same segments written clear."""

from __future__ import annotations

import secrets
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.live import LiveOutput
from mediaplane.live._protection import LICENCE_PLACEHOLDER, LiveProtection
from mediaplane.media import MPD, Fmp4Reader, Fragment, InitSegment, MediaPlaylist
from tests.fmp4_index import indexed
from tests.support import MEDIA_CACHE

LIVE = "+empty_moov+default_base_moof+skip_trailer+cmaf"
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _track(name: str, video: bool) -> tuple[InitSegment, list[Fragment]]:
    clip = Clip(
        seconds=3,
        video=picture("160x90", 25) if video else None,
        audio=() if video else (sine(440, 48000),),
        codecs=("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "13")
        if video
        else ("-c:a", "aac"),
        extra=(
            "-movflags",
            LIVE + ("+frag_every_frame" if video else ""),
            *(() if video else ("-frag_duration", "200000")),
            "-f",
            "mp4",
        ),  # fmt: skip
    )
    data = clip.make(MEDIA_CACHE / name, timeout=120).read_bytes()
    init, *frags = Fmp4Reader().feed(data)
    assert isinstance(init, InitSegment)
    return init, [f for f in frags if isinstance(f, Fragment)]


@pytest.fixture(scope="module")
def tracks() -> dict[str, tuple[InitSegment, list[Fragment]]]:
    return {
        "video": _track("live-enc-video-3s-g13.mp4", True),
        "audio": _track("live-enc-audio-3s.mp4", False),
    }


def _feed(out: LiveOutput, tracks: dict[str, tuple[InitSegment, list[Fragment]]]) -> None:
    for name, (init, _) in tracks.items():
        out.add_init(name, init)
    timed = sorted(
        (f.decode_time / init.tracks[0].timescale, name, f)
        for name, (init, frags) in tracks.items()
        for f in frags
    )
    for _, name, frag in timed:
        out.add_fragment(name, frag)
    out.finish()


def _md5s(path: Path, key: bytes | None = None) -> list[str]:
    argv = ["ffmpeg", "-v", "error", "-nostdin"]
    argv += ["-decryption_key", key.hex()] if key else []
    argv += ["-i", str(path), "-f", "framemd5", "-"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if line and line[0] != "#"]


def test_segments_parts_and_manifests_of_a_rotating_cbcs_stream(
    tracks: dict[str, tuple[InitSegment, list[Fragment]]], tmp_path: Path
) -> None:
    made: list[tuple[bytes, bytes]] = []

    def new_key() -> tuple[bytes, bytes]:
        made.append((secrets.token_bytes(16), secrets.token_bytes(16)))
        return made[-1]

    kw = {
        "renditions": ["video", "audio"],
        "low_latency": True,
        "part_target": 0.2,
        "segment_target": 0.5,
        "dvr_window_seconds": 60,
        "started_at": START,
        "clock": lambda: START,
    }
    enc = LiveOutput(tmp_path / "enc", protection=LiveProtection("cbcs", new_key, 2), **kw)  # type: ignore[arg-type]
    clear = LiveOutput(tmp_path / "clear", **kw)  # type: ignore[arg-type]
    _feed(enc, tracks)
    _feed(clear, tracks)
    assert len(made) == 3  # segments 0-5 (3 s of 0.5 s segments): epochs 0, 1, 2
    video = tmp_path / "enc" / "video"
    pl = MediaPlaylist.parse((video / "index.m3u8").read_bytes())
    segs = pl.complete_segments
    assert len(segs) >= 5
    for i, seg in enumerate(segs):
        epoch = i // 2
        assert (seg.map is not None) == (i % 2 == 0)
        if seg.map is not None:
            assert seg.map.uri == f"init-k{epoch}.mp4"
        if i % 2 == 0:
            (key,) = seg.keys
            assert key.method == "SAMPLE-AES"
            assert key.keyformat == "org.w3.clearkey"
            assert key.uri == LICENCE_PLACEHOLDER
            assert dict(key.extra)["KEYID"] == "0x" + made[epoch][0].hex().upper()
        else:
            assert not seg.keys
    assert not (video / "init.mp4").exists()  # no clear init segment is served
    # LL-HLS parts are the same encrypted bytes: a segment is its parts, concatenated.
    last = segs[-1]
    assert last.parts
    assert (
        b"".join((video / p.uri).read_bytes() for p in last.parts)
        == (video / str(last.uri)).read_bytes()
    )
    for epoch, (kid, key) in enumerate(made[:2]):
        init = (video / f"init-k{epoch}.mp4").read_bytes()
        assert kid in init
        assert b"encv" in init
        assert b"cbcs" in init
        media = b"".join((video / f"{n}.m4s").read_bytes() for n in (2 * epoch, 2 * epoch + 1))
        cmedia = b"".join(
            (tmp_path / "clear" / "video" / f"{n}.m4s").read_bytes()
            for n in (2 * epoch, 2 * epoch + 1)
        )
        (tmp_path / "e.mp4").write_bytes(indexed(init, media))
        (tmp_path / "c.mp4").write_bytes(
            (tmp_path / "clear" / "video" / "init.mp4").read_bytes() + cmedia
        )
        want = _md5s(tmp_path / "c.mp4")
        assert want
        assert _md5s(tmp_path / "e.mp4", key) == want
        assert media != cmedia
    # Audio: its own segments, the same epochs' keys.
    audio = tmp_path / "enc" / "audio"
    apl = MediaPlaylist.parse((audio / "index.m3u8").read_bytes())
    first = apl.complete_segments[0].keys[0]
    assert dict(first.extra)["KEYID"] == "0x" + made[0][0].hex().upper()
    assert b"enca" in (audio / "init-k0.mp4").read_bytes()
    # The MPD: a Period per epoch, each naming its KID and the licence placeholder.
    mpd = MPD.parse((tmp_path / "enc" / "manifest.mpd").read_bytes())
    assert [p.id for p in mpd.periods][:3] == ["0-k0", "0-k1", "0-k2"]
    for period, (kid, _) in zip(mpd.periods, made, strict=False):
        for aset in period.adaptation_sets:
            kids = {c.default_kid for c in aset.content_protection if c.default_kid}
            assert kids == {str(uuid.UUID(bytes=kid))}
            assert aset.segment_template is not None
            assert "-k" in (aset.segment_template.initialization or "")
    assert LICENCE_PLACEHOLDER.encode() in (tmp_path / "enc" / "manifest.mpd").read_bytes()


def test_protection_changes_at_a_publish(
    tracks: dict[str, tuple[InitSegment, list[Fragment]]], tmp_path: Path
) -> None:
    """A session published clear, then cenc (the policy changed before a reconnect), then
    clear again: EXT-X-KEY where the key changes (METHOD=NONE back to clear), each publish's
    map its own, the MPD's Periods with and without ContentProtection."""
    keys = [(secrets.token_bytes(16), secrets.token_bytes(16))]
    out = LiveOutput(
        tmp_path,
        renditions=["video"],
        low_latency=False,
        part_target=0.5,
        segment_target=0.5,
        dvr_window_seconds=60,
        started_at=START,
        clock=lambda: START,
    )
    init, frags = tracks["video"]
    cenc = LiveProtection("cenc", lambda: keys[0])
    for i, protection in enumerate((None, cenc, None)):
        feed = out.begin_publish(["video"], protection=protection) if i else out
        feed.add_init("video", init)
        for frag in frags[:26]:  # two segments (a keyframe every 13 frames)
            feed.add_fragment("video", frag)
        out.end_publish(i)
    out.finish()
    pl = MediaPlaylist.parse((tmp_path / "video" / "index.m3u8").read_bytes())
    tagged = [(s.map.uri if s.map else None, [k.method for k in s.keys]) for s in pl.segments]
    assert tagged == [
        ("init.mp4", []),
        (None, []),
        ("init-1-k0.mp4", ["SAMPLE-AES-CTR"]),
        (None, []),
        ("init-2.mp4", ["NONE"]),
        (None, []),
    ]
    assert keys[0][0] in (tmp_path / "video" / "init-1-k0.mp4").read_bytes()
    assert not (tmp_path / "video" / "init-1.mp4").exists()
    mpd = MPD.parse((tmp_path / "manifest.mpd").read_bytes())
    assert [p.id for p in mpd.periods] == ["0", "1-k0", "2"]
    protected = [bool(p.adaptation_sets[0].content_protection) for p in mpd.periods]
    assert protected == [False, True, False]
