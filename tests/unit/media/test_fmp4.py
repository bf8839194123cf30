"""The fragmented-MP4 stream reader on fMP4 that real ffmpeg writes, fed whole and in
pieces, and on broken and hostile streams."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.media import Fmp4Error, Fmp4Reader, Fragment, InitSegment, avc_codec_string
from tests.support import MEDIA_CACHE

FRAG = ("-movflags", "+empty_moov+default_base_moof+frag_keyframe", "-frag_duration", "250000")


def _clip(name: str, *, video: bool = True, audio: bool = True) -> bytes:
    """2 s, 160x90 at 30 fps with a keyframe each second, in 0.25 s fragments."""
    clip = Clip(
        seconds=2,
        video=picture("160x90", 30) if video else None,
        audio=(sine(440, 44100),) if audio else (),
        extra=("-g", "30", "-keyint_min", "30", "-sc_threshold", "0", *FRAG, "-f", "mp4"),
    )
    return clip.make(MEDIA_CACHE / name, timeout=120).read_bytes()


@pytest.fixture(scope="module")
def video() -> bytes:
    return _clip("fmp4-video-2s.mp4", audio=False)


@pytest.fixture(scope="module")
def audio() -> bytes:
    return _clip("fmp4-audio-2s.mp4", video=False)


def _read(data: bytes, step: int | None = None) -> tuple[InitSegment, list[Fragment]]:
    reader = Fmp4Reader()
    step = step or len(data)
    items = []
    for i in range(0, len(data), step):
        items += reader.feed(data[i : i + step])
    reader.end()
    init, *frags = items
    assert isinstance(init, InitSegment)
    assert all(isinstance(f, Fragment) for f in frags)
    return init, frags  # type: ignore[return-value]


def test_video_init_and_fragments(video: bytes) -> None:
    init, frags = _read(video)
    (track,) = init.tracks
    assert track.kind == "video"
    assert track.codec == avc_codec_string(init.data)
    assert (track.width, track.height) == (160, 90)
    assert track.timescale > 0
    assert len(frags) >= 8
    # Contiguous: each fragment starts where the one before ended.
    for a, b in zip(frags, frags[1:], strict=False):
        assert b.decode_time == a.decode_time + a.duration
    total = sum(f.duration for f in frags) / track.timescale
    assert abs(total - 2.0) < 0.05
    # Keyframes at 0 s and 1 s only: two fragments start with a sync sample.
    assert frags[0].sync
    starts = [f.decode_time / track.timescale for f in frags if f.sync]
    assert [round(s, 2) for s in starts] == [0.0, 1.0]
    assert sum(f.samples for f in frags) == 60
    joined = b"".join([init.data, *(f.data for f in frags)])
    assert video[: len(joined)] == joined
    assert video[len(joined) + 4 : len(joined) + 8] == b"mfra"  # a file's trailer


def test_audio_track(audio: bytes) -> None:
    init, frags = _read(audio)
    (track,) = init.tracks
    assert track.kind == "audio"
    assert track.codec == "mp4a.40.2"
    assert track.timescale == 44100
    assert all(f.sync for f in frags)
    assert abs(sum(f.duration for f in frags) / 44100 - 2.0) < 0.1


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_pieces_give_the_same_result(video: bytes, step: int) -> None:
    data = video[:20_000] if step == 1 else video
    whole = Fmp4Reader().feed(data)
    reader = Fmp4Reader()
    pieces = []
    for i in range(0, len(data), step):
        pieces += reader.feed(data[i : i + step])
    assert pieces == whole


def test_two_tracks_in_one_fragment_is_not_cmaf() -> None:
    with pytest.raises(Fmp4Error, match="one track"):
        _read(_clip("fmp4-muxed-2s.mp4"))


def _box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_stream_must_start_with_ftyp(video: bytes) -> None:
    with pytest.raises(Fmp4Error, match="not fMP4"):
        Fmp4Reader().feed(_box(b"moof") + video)
    with pytest.raises(Fmp4Error, match="not fMP4"):
        Fmp4Reader().feed(b"FLV\x01\x05\x00\x00\x00\x09" + bytes(64))


def test_box_sizes_are_bounded(video: bytes) -> None:
    init, _ = _read(video)
    reader = Fmp4Reader()
    reader.feed(init.data)
    # A header that announces 1 GiB is refused at once, before any of it is held.
    with pytest.raises(Fmp4Error, match="larger than"):
        reader.feed(struct.pack(">I4s", 1 << 30, b"mdat"))
    with pytest.raises(Fmp4Error, match="larger than"):
        Fmp4Reader().feed(struct.pack(">I4sQ", 1, b"ftyp", 1 << 40))
    with pytest.raises(Fmp4Error, match="larger than"):
        Fmp4Reader(max_mdat=1000).feed(init.data + struct.pack(">I4s", 1001, b"mdat"))
    with pytest.raises(Fmp4Error, match="size 0"):
        Fmp4Reader().feed(struct.pack(">I4s", 0, b"ftyp"))
    with pytest.raises(Fmp4Error, match="smaller"):
        Fmp4Reader().feed(struct.pack(">I4s", 4, b"ftyp"))


def test_largesize_boxes_and_free_boxes_between_fragments(video: bytes) -> None:
    init, frags = _read(video)
    free = struct.pack(">I4sQ", 1, b"free", 24) + bytes(8)
    reader = Fmp4Reader()
    items = reader.feed(init.data + free + frags[0].data + frags[1].data)
    assert [type(i) for i in items] == [InitSegment, Fragment, Fragment]
    assert items[1].data == free + frags[0].data  # type: ignore[union-attr]


def test_out_of_order_and_truncated(video: bytes) -> None:
    init, frags = _read(video)
    moof_size = struct.unpack_from(">I", frags[0].data)[0]
    moof, mdat = frags[0].data[:moof_size], frags[0].data[moof_size:]
    with pytest.raises(Fmp4Error, match="without the moof"):
        Fmp4Reader().feed(init.data + mdat)
    with pytest.raises(Fmp4Error, match="two moof"):
        Fmp4Reader().feed(init.data + moof + moof)
    reader = Fmp4Reader()
    reader.feed(init.data + frags[0].data[:-10])
    with pytest.raises(Fmp4Error, match="ended inside"):
        reader.end()
    with pytest.raises(Fmp4Error, match="before its init"):
        Fmp4Reader().end()


def test_sample_count_is_checked_against_the_box(video: bytes) -> None:
    init, frags = _read(video)
    data = bytearray(frags[0].data)
    at = data.find(b"trun")
    struct.pack_into(">I", data, at + 8, 0xFFFFFFFF)  # sample_count
    with pytest.raises(Fmp4Error, match="samples"):
        Fmp4Reader().feed(init.data + bytes(data))


def test_mutated_streams_raise_only_fmp4_errors(video: bytes) -> None:
    """Random byte changes (in the boxes' headers, where they matter) never make the reader
    raise anything but Fmp4Error."""
    sample = video[:12_000]
    rng = random.Random(10)
    for _ in range(400):
        data = bytearray(sample)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(0, 2_500)] = rng.randrange(256)
        reader = Fmp4Reader(max_header_box=64 * 1024, max_mdat=1024 * 1024)
        try:
            reader.feed(bytes(data))
            reader.end()
        except Fmp4Error:
            pass


def test_reads_what_the_live_packager_asks_ffmpeg_for(tmp_path: Path) -> None:
    """One frame per fragment (the live video track): every fragment one sample."""
    clip = Clip(
        seconds=1,
        video=picture("160x90", 30),
        audio=(),
        extra=(
            "-g", "15",
            "-movflags", "+empty_moov+default_base_moof+skip_trailer+cmaf+frag_every_frame",
            "-f", "mp4",
        ),
    )  # fmt: skip
    init, frags = _read(clip.make(tmp_path / "every-frame.mp4", timeout=60).read_bytes())
    assert len(frags) == 30
    assert all(f.samples == 1 for f in frags)
    assert [i for i, f in enumerate(frags) if f.sync] == [0, 15]
    assert init.tracks[0].kind == "video"
