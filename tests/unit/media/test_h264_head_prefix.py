"""The slice-header length is parsed from a prefix of the NAL unit first: whatever the
prefixes tried (cut inside the header, inside an Exp-Golomb code, anywhere), every slice of
a real H.264 stream gets the length the whole NAL unit gives, and with it the same
subsample map."""

from __future__ import annotations

import pytest

from mediaplane.clips import Clip, picture
from mediaplane.media import CencWriter, Fmp4Reader, Fragment, InitSegment, _h264
from mediaplane.media._cenc import _walk
from tests.support import MEDIA_CACHE

#: B-frames, weighted prediction and two slices: headers of many lengths.
X264 = ("-c:v", "libx264", "-preset", "fast", "-pix_fmt", "yuv420p", "-bf", "3",
        "-g", "25", "-x264-params", "weightp=2:slices=2:ref=4")  # fmt: skip


@pytest.fixture(scope="module")
def samples() -> tuple[CencWriter, list[bytes]]:
    clip = Clip(
        seconds=1,
        video=picture("320x180", 25),
        audio=(),
        codecs=X264,
        extra=("-movflags", "+empty_moov+default_base_moof+frag_every_frame", "-f", "mp4"),
    )
    data = clip.make(MEDIA_CACHE / "h264-prefix-320x180-1s.mp4", timeout=120).read_bytes()
    init, *frags = Fmp4Reader().feed(data)
    assert isinstance(init, InitSegment)
    writer = CencWriter("cbcs", b"\x01" * 16, b"\x02" * 16, init)
    out = []
    for f in frags:
        assert isinstance(f, Fragment)
        # One sample per fragment: its mdat payload is the sample.
        (p, e) = next((p, e) for k, _, p, e in _walk(f.data, 0, len(f.data)) if k == b"mdat")
        out.append(f.data[p:e])
    return writer, out


@pytest.mark.parametrize("prefixes", [(1, 2, 3, 5, 8, 13), (64, 1024), (20,)])
def test_prefixes_give_the_whole_nal_units_answer(
    samples: tuple[CencWriter, list[bytes]],
    prefixes: tuple[int, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer, frames = samples
    info = next(iter(writer._tracks.values()))
    monkeypatch.setattr(_h264, "_HEAD_PREFIXES", ())
    whole = [CencWriter.subsamples(info, s) for s in frames]
    monkeypatch.setattr(_h264, "_HEAD_PREFIXES", prefixes)
    assert [CencWriter.subsamples(info, s) for s in frames] == whole
    assert len(whole) == 25 and all(len(m) >= 2 for m in whole)  # two slices a frame
