"""TsScanner on hand-made MPEG-TS packets: the PMT's stream types decide what is copied,
transcoded, refused or ignored; H.264 keyframes are seen; a PMT that changes the tracks mid-stream is refused; framing is checked."""

from __future__ import annotations

import pytest

from mediaplane.live._mpegts import TsScanner
from mediaplane.media import InvalidMedia

PMT_PID = 0x1000


def packet(pid: int, payload: bytes, *, start: bool = True) -> bytes:
    head = bytes([0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF, 0x10])
    body = (b"\x00" if start else b"") + payload  # pointer field
    return head + body + b"\xff" * (184 - len(body))


def section(table: int, ext: int, body: bytes, version: int = 0) -> bytes:
    length = 5 + len(body) + 4
    head = bytes([table, 0xB0 | length >> 8, length & 0xFF, ext >> 8, ext & 0xFF])
    return head + bytes([0xC1 | version << 1, 0, 0]) + body + b"\0\0\0\0"  # CRC not checked


def pat() -> bytes:
    return packet(0, section(0x00, 1, bytes([0, 1, 0xE0 | PMT_PID >> 8, PMT_PID & 0xFF])))


def pmt(*streams: tuple[int, int, bytes], version: int = 0) -> bytes:
    body = bytes([0xE1, 0x00, 0xF0, 0x00])  # PCR PID 0x100, no program info
    for kind, pid, desc in streams:
        body += bytes([kind, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, len(desc)]) + desc
    return packet(PMT_PID, section(0x02, 1, body, version))


def pes(pid: int, pts: float) -> bytes:
    """A packet starting a PES with a PTS (no pointer field: PES packets have none)."""
    t = round(pts * 90000)
    stamp = bytes([
        0x21 | (t >> 29 & 0x0E), t >> 22 & 0xFF, 0x01 | (t >> 14 & 0xFE),
        t >> 7 & 0xFF, 0x01 | (t << 1 & 0xFE),
    ])  # fmt: skip
    head = bytes([0x47, 0x40 | pid >> 8, pid & 0xFF, 0x10])
    return head + (b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + stamp).ljust(184, b"\xff")


H264, AAC = (0x1B, 0x100, b""), (0x0F, 0x101, b"")


def test_h264_and_aac_are_taken_and_ready_once_both_began() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, AAC, (0x86, 0x102, b"")))  # SCTE-35 cues: ignored
    assert (s.video_pid, s.audio_pid) == (0x100, 0x101)
    assert not s.ready()
    s.feed(pes(0x100, 10.0))
    assert not s.ready() and s.first_ts == pytest.approx(10.0)
    s.feed(pes(0x101, 10.02))
    assert s.ready()


def test_a_declared_track_that_never_comes_waits_one_second() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, AAC) + pes(0x100, 1.0) + pes(0x100, 1.5))
    assert not s.ready()
    s.feed(pes(0x100, 2.0))
    assert s.ready()


@pytest.mark.parametrize(
    ("stream", "name"),
    [
        ((0x24, 0x100, b""), "HEVC"),
        ((0x02, 0x100, b""), "MPEG-2 video"),
        ((0x06, 0x100, b"\x05\x04HEVC"), "HEVC"),
        ((0x81, 0x101, b""), "AC-3"),
        ((0x03, 0x101, b""), "MPEG-1 audio"),
        ((0x11, 0x101, b""), "AAC in LATM"),
        ((0x06, 0x101, b"\x05\x04Opus"), "Opus"),
        ((0x06, 0x101, b"\x6a\x01\x00"), "AC-3"),
    ],
)
def test_other_decodable_codecs_are_taken_to_be_transcoded(
    stream: tuple[int, int, bytes], name: str
) -> None:
    s = TsScanner()
    s.feed(pat() + pmt(stream))
    kind = "video" if stream[1] == 0x100 else "audio"
    assert getattr(s, f"{kind}_pid") == stream[1]
    assert getattr(s, f"{kind}_codec") == name


@pytest.mark.parametrize(
    ("stream", "name"),
    [
        ((0x33, 0x100, b""), "VVC"),
        ((0x21, 0x100, b""), "JPEG 2000"),
        ((0x06, 0x100, b"\x05\x04AV01"), "AV1"),
        ((0x83, 0x101, b""), "TrueHD"),
    ],
)
def test_codecs_not_read_are_refused_with_a_hint(stream: tuple[int, int, bytes], name: str) -> None:
    s = TsScanner()
    with pytest.raises(InvalidMedia, match=f"is {name}, which is not read: send H.264"):
        s.feed(pat() + pmt(stream))


def keyframe_pes(pid: int, pts: float, *, rai: bool) -> bytes:
    """A PES start with an IDR slice (NAL type 5) after an AUD, the random access
    indicator set or not."""
    data = pes(pid, pts)
    body = data[4:].rstrip(b"\xff")
    nals = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x65\x88"
    if rai:  # an adaptation field of one flag byte before the payload
        head = bytes([0x47, 0x40 | pid >> 8, pid & 0xFF, 0x30, 1, 0x40])
        return head + (body + nals).ljust(182, b"\xff")
    return data[:4] + (body + nals).ljust(184, b"\xff")


def test_an_idr_after_a_large_sei_is_a_keyframe() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, AAC))
    start = pes(0x100, 2.0)
    sei = b"\x00\x00\x00\x01\x06" + b"\x05" * 170  # fills the PES's first packet
    first = start[:4] + (start[4:].rstrip(b"\xff") + sei)[:184]
    idr = bytes([0x47, 0x01, 0x00, 0x11]) + (b"\x00\x00\x01\x65\x88").ljust(184, b"\xff")
    s.feed(first + idr)
    p_slice = bytes([0x47, 0x01, 0x00, 0x12]) + (b"\x00\x00\x01\x41\x9a").ljust(184, b"\xff")
    s.feed(pes(0x100, 2.5)[:4] + pes(0x100, 2.5)[4:].rstrip(b"\xff").ljust(184, b"\xff") + p_slice)
    assert s.keyframes == [pytest.approx(2.0)]


def test_h264_keyframes_are_seen() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, AAC))
    s.feed(keyframe_pes(0x100, 1.0, rai=True) + pes(0x100, 1.5))
    s.feed(keyframe_pes(0x100, 11.0, rai=False) + pes(0x101, 11.0))
    assert s.keyframes == [pytest.approx(1.0), pytest.approx(11.0)]
    assert s.newest == pytest.approx(11.0)


def test_private_data_without_codec_descriptors_is_ignored() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, (0x06, 0x102, b"\x05\x04KLVA"), (0x15, 0x103, b"")))
    assert (s.video_pid, s.audio_pid) == (0x100, None)


def test_a_pmt_that_changes_the_tracks_is_refused() -> None:
    s = TsScanner()
    s.feed(pat() + pmt(H264, AAC))
    s.feed(pmt(H264, AAC))  # repeated, same version: fine
    with pytest.raises(InvalidMedia, match="changed mid-stream"):
        s.feed(pmt(H264, (0x0F, 0x105, b""), version=1))
    t = TsScanner()
    t.feed(pat() + pmt(H264))
    with pytest.raises(InvalidMedia, match="changed mid-stream"):
        t.feed(pmt((0x24, 0x100, b""), version=1))


def test_framing() -> None:
    s = TsScanner()
    s.feed(b"\x00" * 100 + pat()[:50])  # a sender starting mid-packet, then split writes
    s.feed(pat()[50:] + pmt(H264))
    assert s.video_pid == 0x100
    with pytest.raises(InvalidMedia, match="lost packet sync"):
        s.feed(b"\x00" * 188)
    with pytest.raises(InvalidMedia, match="not MPEG-TS"):
        TsScanner().feed(b"\x00" * 200)
    with pytest.raises(InvalidMedia, match="not MPEG-TS"):
        TsScanner().feed(b"\x47" + b"\x00" * 300)  # one sync byte is not a stream
