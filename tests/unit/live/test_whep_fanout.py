"""The WHEP fan-out on a real fMP4 stream as the packager's ffmpeg writes it (one frame per
fragment): a viewer joining mid-GOP starts at the next keyframe, with SPS and PPS first;
what it gets is an H.264 stream ffmpeg decodes frame for frame; a viewer that falls behind
skips to a keyframe; timestamps go on over a new packager; the stream's end ends viewers."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from mediaplane.clips import Clip
from mediaplane.live._whep import H264Fanout, annexb_access_unit, avcc_parameter_sets
from mediaplane.media import Fmp4Reader, Fragment, InitSegment

FPS, GOP = 30, 15


@pytest.fixture(scope="module")
def fmp4(tmp_path_factory: pytest.TempPathFactory) -> list[InitSegment | Fragment]:
    path = tmp_path_factory.mktemp("whep") / "v.mp4"
    Clip(
        seconds=2,
        video=f"testsrc2=size=320x180:rate={FPS}",
        audio=(),
        codecs=("-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"),
        extra=("-g", str(GOP), "-movflags", "+frag_every_frame+empty_moov+default_base_moof"),
    ).make(path)
    return Fmp4Reader().feed(path.read_bytes())


def _frames(data: bytes) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames"]
        + ["-of", "csv=p=0", "-f", "h264", "-"],
        input=data,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return int(out.stdout.strip())


def test_parameter_sets_and_access_units(fmp4: list[InitSegment | Fragment]) -> None:
    init = fmp4[0]
    assert isinstance(init, InitSegment)
    found = avcc_parameter_sets(init.data)
    assert found is not None
    sets, length_size = found
    assert [s[0] & 0x1F for s in sets] == [7, 8] and length_size == 4
    frags = [f for f in fmp4 if isinstance(f, Fragment)]
    key = annexb_access_unit(frags[0].data, length_size, sets, True)
    assert key.startswith(b"\x00\x00\x00\x01" + sets[0])
    assert avcc_parameter_sets(b"not an init segment") is None


async def test_viewer_starts_at_a_keyframe_and_decodes(
    fmp4: list[InitSegment | Fragment],
) -> None:
    fanout = H264Fanout(asyncio.get_running_loop(), max_viewers=1)
    frags = [f for f in fmp4 if isinstance(f, Fragment)]
    fanout.feed("video", fmp4[0])
    for f in frags[:5]:  # before the viewer: mid-GOP when it comes
        fanout.feed("video", f)
    viewer = fanout.subscribe()
    assert viewer is not None and fanout.subscribe() is None  # max_viewers
    for f in frags[5:]:
        fanout.feed("video", f)
    await asyncio.sleep(0.05)  # call_soon_threadsafe deliveries
    got = []
    while not viewer.queue.empty():
        item = viewer.queue.get_nowait()
        assert item is not None
        got.append(item)
    assert len(got) == len(frags) - GOP  # from the second keyframe on
    assert got[0][0][4] & 0x1F == 7  # SPS first
    stamps = [ts for _, ts in got]
    assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 90000 // FPS
    assert _frames(b"".join(au for au, _ in got)) == len(got)

    # A new packager (the publisher reconnected): its times restart at 0, the viewer's go on.
    fanout.feed("video", fmp4[0])
    fanout.feed("video", frags[0])
    await asyncio.sleep(0.05)
    item = viewer.queue.get_nowait()
    assert item is not None and item[1] > stamps[-1]

    fanout.end()
    assert viewer.queue.get_nowait() is None  # its track ends


async def test_a_viewer_behind_skips_to_a_keyframe(fmp4: list[InitSegment | Fragment]) -> None:
    fanout = H264Fanout(asyncio.get_running_loop(), max_viewers=5)
    frags = [f for f in fmp4 if isinstance(f, Fragment)]
    fanout.feed("video", fmp4[0])
    viewer = fanout.subscribe()
    assert viewer is not None
    for _ in range(3):  # far more than its queue holds, never read
        for f in frags:
            fanout.feed("video", f)
    await asyncio.sleep(0.05)
    assert viewer.queue.full()
    while not viewer.queue.empty():  # it reads again: the next frame it gets is a keyframe
        viewer.queue.get_nowait()
    for f in frags[3:]:
        fanout.feed("video", f)
    await asyncio.sleep(0.05)
    first = viewer.queue.get_nowait()
    assert first is not None and first[0][4] & 0x1F == 7
