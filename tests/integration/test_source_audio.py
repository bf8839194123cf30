"""Audio as sources carry it, through a real server on both backends: a 5.1 source downmixed
to stereo (levels measured with astats), several audio streams (languages, commentary,
audio description) as labelled audio renditions in HLS, DASH and the API, and audio-only
sources (M4A, MP3, WAV) as assets with audio-only manifests and a waveform poster."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from tests.audio_media import (
    CENTRE,
    SECONDS,
    TRACKS,
    audio_only_clip,
    languages_clip,
    surround_clip,
)
from tests.support import Server, ffprobe_json, probe_decodes

AUDIO_ONLY = ("m4a", "mp3", "wav")


@pytest.fixture(scope="module")
def assets(server: Server) -> dict[str, dict[str, Any]]:
    """Every kind uploaded first (the worker processes them side by side), then awaited."""
    sources = {
        "surround": surround_clip(),
        "languages": languages_clip(),
        **{kind: audio_only_clip(kind) for kind in AUDIO_ONLY},
    }
    uploaded = {kind: server.upload(path, title=kind)["id"] for kind, path in sources.items()}
    return {kind: server.wait(asset_id) for kind, asset_id in uploaded.items()}


def _ready(assets: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    asset = assets[kind]
    assert asset["status"] == "ready", asset
    return asset


def _base(server: Server, asset: dict[str, Any]) -> str:
    return f"{server.url}/play/{asset['playback_ids'][0]['id']}"


def _rendition_bytes(base: str, rid: str) -> bytes:
    """A rendition's init segment and every media segment, as its HLS playlist lists them."""
    url = f"{base}/{rid}/media.m3u8"
    playlist = m3u8.loads(httpx.get(url).text, uri=url)
    assert playlist.is_endlist and playlist.segments
    data = httpx.get(f"{base}/{rid}/init.mp4").content
    for seg in playlist.segments:
        data += httpx.get(seg.absolute_uri).content
    return data


def _rms_db(data: bytes, tmp: Path, filters: str = "") -> list[float]:
    """RMS level (dBFS) of each channel of the audio in ``data``, after ``filters``."""
    src = tmp / "rendition.mp4"
    src.write_bytes(data)
    graph = (filters + "," if filters else "") + (
        "astats=measure_overall=none:measure_perchannel=RMS_level"
    )
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(src), "-af", graph, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stderr
    levels = [float(v) for v in re.findall(r"RMS level dB: (-?[\d.]+|-inf)", out)]
    assert levels, out
    return levels


def _db(peak: float) -> float:
    return 20 * math.log10(peak / math.sqrt(2))


def test_surround_downmix_levels(
    server: Server, assets: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    asset = _ready(assets, "surround")
    (audio,) = [t for t in asset["tracks"] if t["type"] == "audio"]
    assert (audio["channels"], audio["sample_rate"], audio["codec"]) == (2, 48000, "aac")
    data = _rendition_bytes(_base(server, asset), "audio")
    stream = probe_decodes(data)["streams"][0]
    assert (stream["codec_name"], stream["channels"]) == ("aac", 2)
    # The centre comes out in both L and R at −3 dB, divided by the gain sum of a full
    # downmix row (1 + 0.707 + 0.707), so four loud channels can never clip: −10.7 dB.
    expected = _db(CENTRE) + 20 * math.log10(0.7071 / (1 + 2 * 0.7071))
    left, right = _rms_db(data, tmp_path, "highpass=f=500")
    assert left == pytest.approx(expected, abs=1.0)
    assert right == pytest.approx(left, abs=0.2)
    # The LFE tone (60 Hz, as loud as the centre) is dropped: nothing left below 120 Hz.
    # (Mixed in at any gain a downmix uses it would be above −30 dBFS here.)
    assert max(_rms_db(data, tmp_path, "lowpass=f=120,lowpass=f=120")) < -55


def test_languages_hls(server: Server, assets: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    base = _base(server, _ready(assets, "languages"))
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    media = [m for m in master.media if m.type == "AUDIO"]
    assert [m.uri for m in media] == [f"audio{n}/media.m3u8" for n in ("", "2", "3", "4")]
    assert {m.group_id for m in media} == {"audio"}
    assert [m.language for m in media] == ["en", "fr", "en", "en"]
    assert [m.name for m in media] == [
        "English",
        "Français",
        "Director's commentary",
        "English (audio description)",
    ]
    assert [m.default for m in media] == ["YES", "NO", "NO", "NO"]
    assert [m.autoselect for m in media] == ["YES", "YES", "NO", "YES"]
    assert media[3].characteristics == "public.accessibility.describes-video"
    assert all(m.characteristics is None for m in media[:3])
    assert master.playlists and all(p.stream_info.audio == "audio" for p in master.playlists)
    # Each rendition is its own source stream (told apart by their levels), in stereo.
    for m, (_, _, _, peak) in zip(media, TRACKS, strict=True):
        data = _rendition_bytes(base, m.uri.split("/")[0])
        levels = _rms_db(data, tmp_path)
        assert levels == pytest.approx([_db(peak)] * 2, abs=1.0), m.name  # mono → both ears
        tagged = ffprobe_json("", data=data)["streams"][0]["tags"]["language"]
        assert tagged == {"en": "eng", "fr": "fra"}[m.language]


def test_languages_dash(server: Server, assets: dict[str, dict[str, Any]]) -> None:
    base = _base(server, _ready(assets, "languages"))
    mpd = MPEGDASHParser.parse(httpx.get(base + "/manifest.mpd").text)
    sets = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "audio"]
    assert [a.representations[0].id for a in sets] == ["audio", "audio2", "audio3", "audio4"]
    assert [a.lang for a in sets] == ["en", "fr", "en", "en"]
    assert [[r.value for r in a.roles] for a in sets] == [
        ["main"],
        ["alternate"],
        ["commentary"],
        ["description"],
    ]
    assert [len(a.accessibilities or []) for a in sets] == [0, 0, 0, 1]
    for aset in sets:
        rep = aset.representations[0]
        assert httpx.head(f"{base}/{rep.id}/init.mp4").status_code == 200


def test_languages_api_tracks(server: Server, assets: dict[str, dict[str, Any]]) -> None:
    asset = _ready(assets, "languages")
    assert asset["max_resolution"] == "180p"
    audio = [t for t in asset["tracks"] if t["type"] == "audio"]
    assert [(t["id"], t["language"], t["default"], t["role"]) for t in audio] == [
        ("audio", "en", True, "main"),
        ("audio2", "fr", False, "alternate"),
        ("audio3", "en", False, "commentary"),
        ("audio4", "en", False, "description"),
    ]
    assert [t["name"] for t in audio][:2] == ["English", "Français"]
    assert all(t["channels"] == 2 for t in audio)
    assert [t["type"] for t in asset["tracks"]].count("video") == 1
    listed = [r["id"] for r in asset["renditions"] if r["type"] == "audio"]
    assert listed == ["audio", "audio2", "audio3", "audio4"]


@pytest.mark.parametrize("kind", AUDIO_ONLY)
def test_audio_only_asset(
    server: Server, assets: dict[str, dict[str, Any]], kind: str, tmp_path: Path
) -> None:
    asset = _ready(assets, kind)
    assert asset["errors"] is None
    assert asset["max_resolution"] is None and asset["aspect_ratio"] is None
    assert asset["max_frame_rate"] is None
    assert SECONDS - 0.1 <= asset["duration"] <= SECONDS + 0.2
    (track,) = asset["tracks"]
    assert (track["type"], track["channels"], track["default"]) == ("audio", 2, True)
    base = _base(server, asset)
    # HLS: one audio variant (the audio's own playlist), no RESOLUTION, no video codec.
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    (variant,) = master.playlists
    assert variant.stream_info.codecs == "mp4a.40.2"
    assert variant.stream_info.resolution is None
    assert variant.uri == "audio/media.m3u8"
    data = _rendition_bytes(base, "audio")
    assert [s["codec_type"] for s in probe_decodes(data)["streams"]] == ["audio"]
    assert _rms_db(data, tmp_path) == pytest.approx([_db(0.5)] * 2, abs=1.0)
    # DASH: one audio AdaptationSet, nothing else.
    mpd = MPEGDASHParser.parse(httpx.get(base + "/manifest.mpd").text)
    assert [a.content_type for a in mpd.periods[0].adaptation_sets] == ["audio"]
    # The poster is the waveform, stored once: the same JPEG whatever time is asked for.
    first = httpx.get(base + "/thumbnail.jpg", params={"time": 0.5, "width": 320})
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    (tmp_path / "poster.jpg").write_bytes(first.content)
    picture = ffprobe_json(tmp_path / "poster.jpg")["streams"][0]
    assert (picture["codec_name"], picture["width"], picture["height"]) == ("mjpeg", 1280, 720)
    assert httpx.get(base + "/thumbnail.jpg", params={"time": 1.5}).content == first.content
