"""Byte-identical manifests: what delivery serves today for a few presentations, frozen.

The files under ``golden/`` were written by the renderers before playlists and MPDs became
models; players and the browser tests depend on these bytes, so any change must be deliberate
(regenerate with ``MEDIAPLANE_TEST_WRITE_GOLDEN=1`` and review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediaplane.media import (
    Presentation,
    Rendition,
    Segment,
    render_hls_master,
    render_hls_media,
    render_mpd,
)

GOLDEN = Path(__file__).parent / "golden"


def _rendition(
    rid: str, kind: str, timescale: int, durations: list[int], size: int, **kw: object
) -> Rendition:
    segs, t = [], 0
    for n, d in enumerate(durations, start=1):
        segs.append(Segment(number=n, start=t, duration=d, size=size * n))
        t += d
    return Rendition(
        id=rid,
        kind=kind,  # type: ignore[arg-type]
        codecs=str(kw.pop("codecs", "avc1.64001f")),
        timescale=timescale,
        init_size=800,
        segments=segs,
        **kw,  # type: ignore[arg-type]
    )


def _audio(rid: str, **kw: object) -> Rendition:
    size = int(kw.pop("size", 30_000))  # type: ignore[call-overload]
    return _rendition(
        rid,
        "audio",
        48000,
        [96256, 96256, 47488],
        size,
        codecs="mp4a.40.2",
        sample_rate=48000,
        channels=2,
        **kw,
    )


def _video(rid: str, height: int, size: int, **kw: object) -> Rendition:
    return _rendition(
        rid,
        "video",
        15360,
        [30720, 30720, 15360],
        size,
        width=height * 16 // 9,
        height=height,
        frame_rate="30",
        **kw,
    )


def _presentations() -> dict[str, Presentation]:
    v720 = _video("v720", 720, 500_000)
    v360 = _video("v360", 360, 100_000, codecs="avc1.64001e")
    ntsc = _rendition(
        "v480", "video", 30000, [60060, 60060, 30030], 80_000,
        width=854, height=480, frame_rate="30000/1001",
    )  # fmt: skip
    gap = Rendition(
        id="v",
        kind="video",
        codecs="avc1.64001f",
        timescale=10,
        init_size=1,
        segments=[Segment(1, 0, 20, 1), Segment(2, 25, 20, 1), Segment(3, 45, 20, 1)],
        width=2,
        height=2,
    )
    growing = Rendition(**{**v360.__dict__, "complete": False, "segments": v360.segments[:2]})
    preview = _rendition(
        "preview", "video", 1_000_000, [2_000_000, 2_000_000], 9000,
        width=640, height=360, frame_rate="30", muxed=True, complete=False,
        codecs="avc1.64001e,mp4a.40.2",
    )  # fmt: skip
    return {
        "vod": Presentation(5.0, 2, [v720, v360, _audio("audio")]),
        "languages": Presentation(
            5.0,
            2,
            [
                v720,
                v360,
                _audio("audio3", language="en", name="Director's commentary", role="commentary"),
                _audio("audio2", language="fr", name="Français", role="alternate", size=60_000),
                _audio("audio", language="en", name="English", default=True, role="main"),
                _audio("audio4", language="en", name="English", role="description"),
            ],
        ),
        "audio_only": Presentation(5.0, 2, [_audio("audio", default=True)]),
        "audio_only_two": Presentation(
            5.0,
            2,
            [
                _audio("audio", language="en", name="English", default=True),
                _audio("audio2", language="fr", name="Français"),
            ],
        ),
        "ntsc_no_audio": Presentation(5.005, 2, [ntsc]),
        "gap": Presentation(6.5, 2, [gap]),
        "growing": Presentation(4.0, 2, [growing, _audio("audio")], pending=["v720"]),
        "escaped": Presentation(
            2.0,
            2,
            [v360, _audio("audio", language='en"\n#EXT-X-EVIL', name='say "hi"', default=True)],
        ),
        "preview": Presentation(4.0, 2, [preview], pending=["v360", "v720"]),
    }


def _renders() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, p in _presentations().items():
        out.append((f"{name}.master.m3u8", render_hls_master(p)))
        if p.settled:
            out.append((f"{name}.mpd", render_mpd(p)))
        for r in p.renditions:
            out.append((f"{name}.{r.id}.m3u8", render_hls_media(r, p.segment_seconds)))
    return out


@pytest.mark.parametrize(("name", "text"), _renders(), ids=[n for n, _ in _renders()])
def test_rendered_bytes_unchanged(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MEDIAPLANE_TEST_WRITE_GOLDEN") == "1":
        path.write_bytes(text.encode())
    assert text.encode() == path.read_bytes()
