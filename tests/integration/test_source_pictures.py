"""Sources as cameras, broadcasters and phones write them become renditions people see at
the right shape and colour: non-square pixels (PAL/NTSC DV/HDV), interlaced fields (H.264
and MPEG-2 in TS, DV, a weave only ``idet`` finds), HLG and PQ HDR, full-range video."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from mediaplane.clips import Clip, picture
from mediaplane.config import Settings
from mediaplane.media import (
    Toolchain,
    concat_chunks,
    encode_chunk,
    encode_ladder,
    plan_chunks,
    plan_source_ladder,
    probe,
)
from tests.support import MEDIA_CACHE, Server, ffprobe_json, worst_psnr


def _panning(width: int, height: int, rate: str, seconds: float) -> str:
    """A lavfi picture: ``testsrc`` panning sideways (clear motion, so a weave combs and
    ``idet`` tells interlaced from progressive frames reliably)."""
    speed = 300
    wide = width + int(speed * (seconds + 1))
    return f"{picture(f'{wide}x{height}', rate, 'testsrc')},crop={width}:{height}:'t*{speed}':0"


def _clip(video: str, *options: str, seconds: float = 1) -> Clip:
    """A silent ``seconds`` clip of ``video`` (a lavfi picture) with these output options."""
    return Clip(seconds=seconds, video=video, audio=(), codecs=options)


def _panned(width: int, height: int, rate: str, *options: str, seconds: float = 1) -> Clip:
    return _clip(_panning(width, height, rate, seconds), *options, seconds=seconds)


def _still(width: int, height: int, *options: str) -> Clip:
    return _clip(picture(f"{width}x{height}", 25), *options)


HEVC_10 = ("-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le")
BT2020 = ("-color_primaries", "bt2020", "-colorspace", "bt2020nc", "-color_range", "tv")

#: name → (the clip, a file name): each a kind of real source.
KINDS: dict[str, tuple[Clip, str]] = {
    # PAL 16:9 anamorphic (SAR 64:45), progressive H.264.
    "pal-anamorphic": (
        _still(720, 576, "-vf", "setsar=64/45", "-c:v", "libx264", "-pix_fmt", "yuv420p"),
        "pal-16x9.mp4",
    ),
    # NTSC DV 16:9 (SAR 32:27) in QuickTime, fields woven bottom first from 59.94p.
    "ntsc-dv": (
        _panned(
            720, 480, "60000/1001",
            "-vf", "tinterlace=interleave_bottom,setsar=32/27",
            "-c:v", "dvvideo", "-pix_fmt", "yuv411p",
        ),
        "ntsc-dv-16x9.mov",
    ),
    # HDV: 1440×1080 MPEG-2 with 4:3 pixels, 1080i25 top field first, in a transport stream.
    "hdv": (
        _panned(
            1440, 1080, "50",
            "-vf", "tinterlace=interleave_top,setsar=4/3",
            "-c:v", "mpeg2video", "-flags", "+ildct+ilme", "-top", "1", "-b:v", "6M",
        ),
        "hdv-1080i.ts",
    ),
    # Broadcast H.264 in TS: PAL 4:3 (SAR 16:15), interlaced coding, field order tt.
    "h264-ts-interlaced": (
        _panned(
            720, 576, "50",
            "-vf", "tinterlace=interleave_top,setsar=16/15",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-flags", "+ildct+ilme", "-field_order", "tt",
        ),
        "h264-576i.ts",
    ),
    # Woven fields in a stream that says nothing about them: only idet can tell.
    "woven-unflagged": (
        _panned(640, 480, "50", "-vf", "tinterlace=interleave_top", "-c:v", "mpeg4", "-q:v", "3"),
        "woven-mpeg4.avi",
    ),
    # iPhone-style HLG HEVC 10-bit.
    "hlg": (
        _still(320, 180, *HEVC_10, *BT2020, "-color_trc", "arib-std-b67", "-tag:v", "hvc1"),
        "hlg-hevc10.mp4",
    ),
    # HDR10 (PQ) HEVC 10-bit.
    "pq": (
        _still(320, 180, *HEVC_10, *BT2020, "-color_trc", "smpte2084", "-tag:v", "hvc1"),
        "pq-hevc10.mp4",
    ),
    # A phone held upright: landscape frames and a display matrix that turns them a quarter.
    "rotated-phone": (
        _still(480, 270, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        "rotated-phone.mp4",
    ),
    # Full-range (JPEG levels) H.264, as some phones and screen recorders write.
    "full-range": (
        _clip(
            "color=white:size=320x180:rate=25,drawbox=w=160:h=180:color=black:t=fill",
            "-c:v", "libx264", "-pix_fmt", "yuvj420p",
        ),
        "full-range.mp4",
    ),
}  # fmt: skip
INTERLACED = ("ntsc-dv", "hdv", "h264-ts-interlaced", "woven-unflagged")


def make_source(kind: str) -> Path:
    clip, name = KINDS[kind]
    path = MEDIA_CACHE / name
    if kind != "rotated-phone":
        return clip.make(path, timeout=300)
    if not path.exists():  # ffmpeg 5.1 writes the rotation only when remuxing
        upright = clip.make(path.with_name(f"upright-{name}"), timeout=300)
        turned = path.with_name(f"tmp-turned-{name}")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", str(upright)]
            + ["-c", "copy", "-metadata:s:v:0", "rotate=90", str(turned)],
            check=True,
            timeout=60,
        )
        turned.replace(path)
        upright.unlink()
    return path


@pytest.fixture(scope="module")
def assets(sqlite_server: Server) -> dict[str, dict[str, Any]]:
    """Every kind, uploaded at once and processed to the end."""
    uploaded = {k: sqlite_server.upload(make_source(k), title=k) for k in KINDS}
    done = {k: sqlite_server.wait(a["id"], timeout=240) for k, a in uploaded.items()}
    for kind, asset in done.items():
        assert asset["status"] == "ready", (kind, asset)
    return done


@pytest.fixture(scope="module")
def files(
    sqlite_server: Server,
    assets: dict[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Path]]:
    """kind → rendition name → the rendition as served, fetched once."""
    root = tmp_path_factory.mktemp("renditions")
    return {k: renditions(sqlite_server, a, root / k) for k, a in assets.items()}


def renditions(server: Server, asset: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Each video rendition, as its HLS variant serves it (init + every segment)."""
    base = f"{server.url}/play/{asset['playback_ids'][0]['id']}"
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for variant in master.playlists:
        pl = m3u8.loads(httpx.get(variant.absolute_uri).text, uri=variant.absolute_uri)
        init = httpx.get(pl.segment_map[0].absolute_uri).content
        body = b"".join(httpx.get(s.absolute_uri).content for s in pl.segments)
        name = variant.uri.split("/")[0]
        (folder / f"{name}.mp4").write_bytes(init + body)
        out[name] = folder / f"{name}.mp4"
    assert out
    return out


def _video(path: Path) -> dict[str, Any]:
    stream: dict[str, Any] = ffprobe_json(path, "-select_streams", "v:0")["streams"][0]
    return stream


def idet_counts(path: Path) -> tuple[int, int, int]:
    """(tff, bff, progressive) frames as ``idet`` reads them."""
    err = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-i", str(path)]
        + ["-map", "0:v:0", "-vf", "idet", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stderr
    m = re.findall(
        r"Multi frame detection:\s*TFF:\s*(\d+)\s*BFF:\s*(\d+)\s*Progressive:\s*(\d+)", err
    )
    assert m, err
    tff, bff, progressive = (int(x) for x in m[-1])
    return tff, bff, progressive


DISPLAY = {  # kind → (aspect_ratio, top rendition)
    "pal-anamorphic": ("16:9", (854, 480)),
    "ntsc-dv": ("16:9", (854, 480)),
    "hdv": ("16:9", (1920, 1080)),
    "h264-ts-interlaced": ("4:3", (640, 480)),
    "woven-unflagged": ("4:3", (640, 480)),
    "rotated-phone": ("9:16", (240, 426)),
}


@pytest.mark.parametrize("kind", list(DISPLAY))
def test_non_square_pixels_become_square_renditions_at_the_display_shape(
    kind: str,
    sqlite_server: Server,
    assets: dict[str, dict[str, Any]],
    files: dict[str, dict[str, Path]],
) -> None:
    asset = assets[kind]
    aspect, top = DISPLAY[kind]
    assert asset["aspect_ratio"] == aspect
    num, den = (int(x) for x in aspect.split(":"))
    video = next(t for t in asset["tracks"] if t["type"] == "video")
    assert (video["max_width"], video["max_height"]) == top
    for name, path in files[kind].items():
        v = _video(path)
        assert v.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1"), (name, v)
        # Within one pixel of rounding to even sizes of the display aspect.
        assert abs(v["width"] - v["height"] * num / den) <= 2, (name, v["width"], v["height"])
    # The DASH side says the same: square pixels, every rendition at the display shape.
    base = f"{sqlite_server.url}/play/{asset['playback_ids'][0]['id']}"
    mpd = MPEGDASHParser.parse(httpx.get(base + "/manifest.mpd").text)
    (video_set,) = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "video"]
    assert (video_set.max_width, video_set.max_height) == top
    reps = {r.id: r for r in video_set.representations}
    assert set(reps) == set(files[kind])
    for name, path in files[kind].items():
        v = _video(path)
        assert (reps[name].width, reps[name].height) == (v["width"], v["height"]), name
        assert reps[name].sar == "1:1", name


@pytest.mark.parametrize("kind", INTERLACED)
def test_interlaced_sources_become_progressive_renditions(
    kind: str, assets: dict[str, dict[str, Any]], files: dict[str, dict[str, Path]]
) -> None:
    facts = assets[kind]["source"]["video"]
    assert facts["interlaced"] is True
    assert facts["interlace_detected_by"] == ("idet" if kind == "woven-unflagged" else "stream")
    source_tff, source_bff, _ = idet_counts(make_source(kind))
    assert source_tff + source_bff > 0  # the source itself is combed
    for name, path in files[kind].items():
        tff, bff, progressive = idet_counts(path)
        assert progressive >= 4 * (tff + bff), (kind, name, tff, bff, progressive)
        assert float(assets[kind]["max_frame_rate"]) < 31  # frame rate: one frame per frame


def test_every_rendition_is_8_bit_bt709_limited_range(files: dict[str, dict[str, Path]]) -> None:
    for kind, paths in files.items():
        for name, path in paths.items():
            v = _video(path)
            got = (v.get(k) for k in ("color_primaries", "color_transfer", "color_space"))
            assert tuple(got) == ("bt709",) * 3, (kind, name, v)
            assert v.get("color_range") == "tv", (kind, name, v)
            assert v["pix_fmt"] == "yuv420p", (kind, name, v)  # 8-bit 4:2:0
            assert v.get("bits_per_raw_sample", "8") == "8" and "10" not in v["profile"]


@pytest.mark.parametrize(
    ("kind", "hdr", "transfer"), [("hlg", "hlg", "arib-std-b67"), ("pq", "pq", "smpte2084")]
)
def test_hdr_is_tone_mapped_and_its_facts_kept(
    kind: str,
    hdr: str,
    transfer: str,
    assets: dict[str, dict[str, Any]],
    files: dict[str, dict[str, Path]],
) -> None:
    facts = assets[kind]["source"]["video"]
    assert facts["hdr"] == hdr and facts["color_transfer"] == transfer
    assert facts["color_primaries"] == "bt2020" and facts["color_matrix"] == "bt2020nc"
    assert facts["bit_depth"] == 10 and facts["codec"] == "hevc"
    for kind_other in ("pal-anamorphic", "full-range"):
        assert assets[kind_other]["source"]["video"]["hdr"] is None
    # Tone-mapped into video levels: the picture neither crushed nor clipped.
    for path in files[kind].values():
        low, high, mean = _luma(path)
        assert 14 <= low and high <= 237 and 40 < mean < 200, (low, high, mean)


def _luma(path: Path) -> tuple[float, float, float]:
    """Luma over the frames (signalstats): the lowest 10th percentile (YLOW), the highest
    90th (YHIGH), the mean; percentiles, as coding ringing at edges passes the extremes."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path)]
        + ["-vf", "signalstats,metadata=mode=print:file=-", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    values: dict[str, list[float]] = {"YLOW": [], "YHIGH": [], "YAVG": []}
    for key, value in re.findall(r"lavfi\.signalstats\.(YLOW|YHIGH|YAVG)=(\S+)", out):
        values[key].append(float(value))
    return min(values["YLOW"]), max(values["YHIGH"]), sum(values["YAVG"]) / len(values["YAVG"])


def test_full_range_source_becomes_limited_range(
    assets: dict[str, dict[str, Any]], files: dict[str, dict[str, Path]]
) -> None:
    assert assets["full-range"]["source"]["video"]["color_range"] == "pc"
    for path in files["full-range"].values():
        low, high, _ = _luma(path)
        # Black and white are 0 and 255 in the source; video levels 16 and 235 here.
        assert 14 <= low <= 18 and 233 <= high <= 237, (low, high)


def test_idet_pass_tells_woven_from_progressive_when_the_stream_is_silent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    tools = Toolchain.discover(settings)
    woven = probe(tools, make_source("woven-unflagged"), settings).picture
    assert (woven.field_order, woven.interlaced, woven.parity) == (None, "idet", "tff")
    progressive = _panned(640, 480, "25", "-c:v", "mpeg4", "-q:v", "3").make(
        tmp_path / "progressive.avi", timeout=120
    )
    assert probe(tools, progressive, settings).picture.interlaced is None


def test_deinterlaced_chunks_join_into_the_frames_of_a_one_pass_encode(tmp_path: Path) -> None:
    # Chunks seek into an interlaced source: each must deinterlace its first frames with the
    # neighbours they have in one pass, on the same output frame grid. At field rate (one
    # frame per field, 50 fps from 25i) a chunk that deinterlaced after its cut, or laid the
    # grid before the deinterlacer, would start on other frames.
    deinterlace = "field"
    source = _panned(
        320, 240, "50",
        "-vf", "tinterlace=interleave_top",
        "-c:v", "libx264", "-preset", "ultrafast", "-flags", "+ildct+ilme",
        "-field_order", "tt", "-g", "25",
        seconds=5,
    ).make(tmp_path / "interlaced.ts", timeout=120)  # fmt: skip
    settings = Settings(data_dir=tmp_path, x264_preset="ultrafast", deinterlace=deinterlace)
    tools = Toolchain.discover(settings)
    info = probe(tools, source, settings)
    assert info.picture.interlaced == "stream"
    rung = plan_source_ladder(info, field_rate=deinterlace == "field")[0]
    assert rung.fps == 50
    one_pass = encode_ladder(tools, settings, source, info, [rung], tmp_path / "one")[rung.name]
    chunks = plan_chunks(info.duration, rung.fps, rung.gop, 2.0)
    assert len(chunks) == 3
    parts = [
        encode_chunk(tools, settings, source, info, rung, c, tmp_path / "c" / f"{c.index:05d}.mp4")
        for c in chunks
    ]
    joined = concat_chunks(tools, settings, parts, tmp_path / "joined.mp4", info.duration)
    frames = [
        int(
            ffprobe_json(p, "-count_frames", "-select_streams", "v:0")["streams"][0][
                "nb_read_frames"
            ]
        )
        for p in (joined, one_pass)
    ]
    assert frames[0] == frames[1] == int(5 * rung.fps)
    assert worst_psnr(joined, one_pass) > 30  # the same frame at every position
    tff, bff, progressive = idet_counts(joined)
    assert progressive >= 4 * (tff + bff)
