"""Our own Common Encryption of fMP4 (the live path's) against ffmpeg: ``-decryption_key``
decodes what :class:`CencWriter` wrote to the same frames (``framemd5``) as the clear
stream, for cenc and cbcs, video (H.264 with B-frames, weighted prediction, CABAC) and AAC;
and the boxes say what the spec asks (``saio`` pointing at ``senc``, slice headers clear)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from mediaplane.clips import Clip, picture, sine
from mediaplane.media import CencWriter, Fmp4Error, Fmp4Reader, Fragment, InitSegment, MediaError
from mediaplane.media._cenc import _walk
from mediaplane.media._h264 import ParameterSets
from tests.fmp4_index import indexed
from tests.support import MEDIA_CACHE

KID = bytes.fromhex("00112233445566778899aabbccddeeff")
KEY = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
#: As the live packager writes fMP4 (ffmpeg.LIVE_MOVFLAGS): video one frame per fragment.
LIVE = "+empty_moov+default_base_moof+skip_trailer+cmaf"
X264 = ("-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-bf", "3",
        "-g", "25", "-x264-params", "weightp=2:slices=2")  # fmt: skip


def _clip(name: str, video: bool) -> bytes:
    clip = Clip(
        seconds=1,
        video=picture("192x108", 25) if video else None,
        audio=() if video else (sine(440, 48000),),
        codecs=X264 if video else ("-c:a", "aac"),
        extra=(
            "-movflags",
            LIVE + ("+frag_every_frame" if video else ""),
            *(() if video else ("-frag_duration", "200000")),
            "-f",
            "mp4",
        ),  # fmt: skip
    )
    return clip.make(MEDIA_CACHE / name, timeout=120).read_bytes()


def _read(data: bytes) -> tuple[InitSegment, list[Fragment]]:
    reader = Fmp4Reader()
    init, *frags = reader.feed(data)
    reader.end()
    assert isinstance(init, InitSegment)
    return init, [f for f in frags if isinstance(f, Fragment)]


def _framemd5(path: Path, key: bytes | None = None) -> list[str]:
    argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if key is not None:
        argv += ["-decryption_key", key.hex()]
    argv += ["-i", str(path), "-f", "framemd5", "-"]
    out = subprocess.run(argv, capture_output=True, timeout=60, check=True).stdout.decode()
    # Each decoded frame's size and MD5, in order (the timestamps ffmpeg prints follow the
    # sidx's earliest presentation time, which the clear file has none of).
    frames = [line.split(",")[-2:] for line in out.splitlines() if line and line[0] != "#"]
    assert frames
    return [",".join(f).replace(" ", "") for f in frames]


@pytest.fixture(scope="module", params=["video", "audio"])
def clear(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    kind = str(request.param)
    return kind, _clip(f"cenc-{kind}-1s.mp4", kind == "video")


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_ffmpeg_decrypts_to_the_clear_frames(
    clear: tuple[str, bytes], scheme: str, tmp_path: Path
) -> None:
    kind, data = clear
    init, frags = _read(data)
    writer = CencWriter(scheme, KID, KEY, init)
    enc_init = writer.init_segment()
    enc = [writer.fragment(f) for f in frags]
    (tmp_path / "clear.mp4").write_bytes(data)
    out = tmp_path / "enc.mp4"
    # (indexed: ffmpeg 5.1 decrypts a run of fragments only with a sidx, see tests.fmp4_index)
    out.write_bytes(indexed(enc_init.data, b"".join(f.data for f in enc)))
    want = _framemd5(tmp_path / "clear.mp4")
    assert _framemd5(out, KEY) == want
    # Encrypted for real: with another key the decoded frames differ (or do not decode).
    try:
        wrong = _framemd5(out, bytes(16))
    except subprocess.CalledProcessError:
        wrong = []
    assert wrong != want
    # What the reader and the output need stays as it was.
    reread_init, reread = _read(out.read_bytes())
    assert reread_init.tracks == init.tracks
    assert [(f.decode_time, f.duration, f.samples, f.sync) for f in reread] == [
        (f.decode_time, f.duration, f.samples, f.sync) for f in frags
    ]
    entry = b"encv" if kind == "video" else b"enca"
    assert entry in enc_init.data and scheme.encode() in enc_init.data
    assert b"pssh" in enc_init.data and KID in enc_init.data
    _check_aux_info(enc[0].data, scheme, kind == "video")


def _check_aux_info(frag: bytes, scheme: str, video: bool) -> None:
    """saiz/saio/senc: saio's offset (from the moof) is where senc's entries begin, and
    saiz's sizes add up to them."""
    (moof,) = [b for b in _walk(frag, 0, len(frag)) if b[0] == b"moof"]
    _, m_start, m_pay, m_end = moof
    (traf,) = [b for b in _walk(frag, m_pay, m_end) if b[0] == b"traf"]
    boxes = {k: (p, e) for k, _, p, e in _walk(frag, traf[2], traf[3])}
    if scheme == "cbcs" and not video:  # a constant IV, full samples: no per-sample data
        assert b"saio" not in boxes and b"saiz" not in boxes
        sp, se = boxes[b"senc"]
        assert se - sp == 8
        return
    p, e = boxes[b"saio"]
    offset = struct.unpack_from(">I", frag, p + 8)[0]
    sp, se = boxes[b"senc"]
    assert m_start + offset == sp + 8
    count = struct.unpack_from(">I", frag, sp + 4)[0]
    zp, _ = boxes[b"saiz"]
    default, n = struct.unpack_from(">BI", frag, zp + 4)
    assert n == count
    sizes = [default] * n if default else list(frag[zp + 9 : zp + 9 + n])
    assert m_start + offset + sum(sizes) == se
    flags = struct.unpack_from(">I", frag, sp)[0] & 0xFFFFFF
    assert bool(flags & 2) == video
    if not video:
        assert set(sizes) == {8}  # cenc audio: the IV alone


def test_slice_headers_and_parameter_sets_stay_clear() -> None:
    data = _clip("cenc-video-1s.mp4", True)
    init, frags = _read(data)
    writer = CencWriter("cbcs", KID, KEY, init)
    info = next(iter(writer._tracks.values()))
    checked = 0
    for frag in frags[:6]:
        enc = writer.fragment(frag)
        # One sample per fragment: the last `size` bytes of the mdat.
        (_, _, mp, me) = [b for b in _walk(frag.data, 0, len(frag.data)) if b[0] == b"mdat"][0]
        clear, sample = frag.data[mp:me], enc.data[-(me - mp) :]
        pos = 0
        for sub in CencWriter.subsamples(info, clear):
            assert sample[pos : pos + sub.clear] == clear[pos : pos + sub.clear]
            assert sub.protected % 16 == 0
            if sub.protected >= 16:
                assert (
                    sample[pos + sub.clear : pos + sub.clear + 16]
                    != clear[pos + sub.clear : pos + sub.clear + 16]
                )
                checked += 1
            pos += sub.clear + sub.protected
        assert pos == len(clear)
    assert checked >= 6  # two slices a picture


def _ue(v: int) -> str:
    code = bin(v + 1)[2:]
    return "0" * (len(code) - 1) + code


def _rbsp(bits: str) -> bytes:
    bits += "1"  # rbsp_stop_one_bit
    bits = bits.ljust(-(-len(bits) // 8) * 8, "0")
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def test_slice_header_length_counts_emulation_prevention_bytes() -> None:
    ps = ParameterSets()
    # Baseline SPS: frame_num is u(16), pic_order_cnt_lsb u(4); a PPS without the
    # deblocking-filter fields.
    sps = "01000010" + "11000000" + "00001010" + _ue(0) + _ue(12) + _ue(0) + _ue(0)
    sps += _ue(1) + "0" + _ue(11) + _ue(8) + "1" + "1" + "0" + "0"
    ps.add(b"\x67" + _rbsp(sps))
    pps = _ue(0) + _ue(0) + "0" + "0" + _ue(0) + _ue(0) + _ue(0) + "0" + "00"
    pps += _ue(0) + _ue(0) + _ue(0) + "0" + "0" + "0"
    ps.add(b"\x68" + _rbsp(pps))
    # An IDR I slice: first_mb 0, type 2, pps 0, frame_num 0 (16 bits), idr_pic_id 511,
    # poc lsb 0, dec_ref_pic_marking 00, slice_qp_delta 0: 47 bits, whose RBSP bytes
    # B8 00 00 02 00 02 hold 00 00 02, written 00 00 03 02 in the NAL unit.
    header = "1" + _ue(2) + _ue(0) + "0" * 16 + _ue(511) + "0000" + "00" + "1"
    assert len(header) == 47
    rbsp = int(header + "0", 2).to_bytes(6, "big")
    assert rbsp == bytes.fromhex("b80000020002")
    nal = b"\x65" + bytes.fromhex("b8000003020002") + b"\xaa" * 40
    assert ps.slice_header_bytes(nal) == 1 + 7
    with pytest.raises(MediaError, match="picture parameter set"):
        ParameterSets().slice_header_bytes(nal)


def test_refuses_what_it_cannot_encrypt() -> None:
    data = _clip("cenc-video-1s.mp4", True)
    init, frags = _read(data)
    with pytest.raises(MediaError):
        CencWriter("aes-128", KID, KEY, init)
    writer = CencWriter("cenc", KID, KEY, init)
    once = writer.fragment(frags[0])
    with pytest.raises(Fmp4Error, match="encrypted already"):
        writer.fragment(once)
