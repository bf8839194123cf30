"""Packaging: encoded MP4 tracks in, one set of CMAF segments plus a Presentation out.

One interface (:class:`Packager`) so that encryption (CENC/cbcs, later) rides the same step.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from xml.etree import ElementTree as ET

from ._errors import MediaError, ToolMissing
from ._presentation import AudioRole, Presentation, Rendition, Segment
from ._process import ManagedProcess

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mediaplane.config import Settings

NS = {"d": "urn:mpeg:dash:schema:mpd:2011"}
INTERNAL_MPD = "packager.mpd"


@dataclass(frozen=True)
class PackagerInput:
    """One elementary track to package: ``rendition_id`` names its output folder."""

    path: Path
    kind: Literal["video", "audio"]
    rendition_id: str
    frame_rate: str | None = None
    language: str | None = None  # BCP 47; also written into the track (mdhd)
    #: Audio: the label, default flag and role the rendition carries into the manifests.
    name: str | None = None
    default: bool = False
    role: AudioRole | None = None


@dataclass(frozen=True)
class PackagingOptions:
    segment_seconds: int = 2
    timeout_seconds: float = 600.0
    memory_bytes: int = 4 * 1024**3


class Packager(Protocol):
    def package(
        self, inputs: Sequence[PackagerInput], out_dir: Path, options: PackagingOptions
    ) -> Presentation: ...


def find_packager(settings: Settings) -> str:
    """Path of the Shaka Packager binary: the setting, or the one inside the npm package."""
    if settings.packager_path:
        found = shutil.which(settings.packager_path)
        if not found:
            raise ToolMissing(f"MEDIAPLANE_PACKAGER_PATH={settings.packager_path} is not a program")
        return found
    system = {"Linux": "linux", "Darwin": "osx"}.get(platform.system(), "")
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), ""
    )
    binary = (
        settings.effective_node_modules / "shaka-packager" / "bin" / f"packager-{system}-{arch}"
    )
    if not binary.is_file():
        raise ToolMissing(
            f"Shaka Packager not found at {binary}: run `npm ci` in the checkout "
            "(it ships in the pinned shaka-packager npm package) or set MEDIAPLANE_PACKAGER_PATH"
        )
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return str(binary)


class ShakaPackager:
    """Shaka Packager writing ``<rendition>/init.mp4`` and ``<rendition>/<n>.m4s``."""

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def argv(
        self, inputs: Sequence[PackagerInput], out_dir: Path, options: PackagingOptions
    ) -> list[str]:
        argv = [self.binary]
        for inp in inputs:
            d = out_dir / inp.rendition_id
            desc = [
                f"in={inp.path}",
                f"stream={inp.kind}",
                f"init_segment={d / 'init.mp4'}",
                f"segment_template={d / '$Number$.m4s'}",
            ]
            if inp.language:
                desc.append(f"language={inp.language}")
            argv.append(",".join(desc))
        argv += [
            "--segment_duration", str(options.segment_seconds),
            "--mpd_output", str(out_dir / INTERNAL_MPD),
            "--quiet",
        ]  # fmt: skip
        return argv

    def package(
        self, inputs: Sequence[PackagerInput], out_dir: Path, options: PackagingOptions
    ) -> Presentation:
        for inp in inputs:
            if "," in str(inp.path) or "=" in str(inp.path):
                raise MediaError(f"packager input path may not contain ',' or '=': {inp.path}")
        out_dir.mkdir(parents=True, exist_ok=True)
        ManagedProcess(
            self.argv(inputs, out_dir, options),
            timeout=options.timeout_seconds,
            memory_bytes=options.memory_bytes,
            name="packager",
        ).run()
        presentation = read_packager_mpd(out_dir / INTERNAL_MPD, out_dir, inputs, options)
        (out_dir / INTERNAL_MPD).unlink()
        return presentation


def _duration_seconds(value: str) -> float:
    # Shaka writes PT#.###S (possibly with H/M parts).
    value = value.removeprefix("PT")
    total = 0.0
    num = ""
    for ch in value:
        if ch.isdigit() or ch == ".":
            num += ch
        else:
            total += float(num or 0) * {"H": 3600, "M": 60, "S": 1}.get(ch, 0)
            num = ""
    return total


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


def read_packager_mpd(
    mpd_path: Path, out_dir: Path, inputs: Sequence[PackagerInput], options: PackagingOptions
) -> Presentation:
    """Build our Presentation from the packager's MPD and the segment files on disk."""
    root = ET.parse(mpd_path).getroot()
    by_id = {i.rendition_id: i for i in inputs}
    renditions: list[Rendition] = []
    longest = 0.0
    for aset in root.iterfind(".//d:AdaptationSet", NS):
        for rep in aset.iterfind("d:Representation", NS):
            st = rep.find("d:SegmentTemplate", NS)
            if st is None:
                raise MediaError("packager MPD has no SegmentTemplate")
            rid = Path(st.get("initialization", "")).parent.name
            inp = by_id[rid]
            timescale = int(st.get("timescale", "1"))
            number = int(st.get("startNumber", "1"))
            segments: list[Segment] = []
            t = 0
            for s in st.iterfind("d:SegmentTimeline/d:S", NS):
                t = int(s.get("t", t))
                d = int(s.get("d", "0"))
                for _ in range(int(s.get("r", "0")) + 1):
                    size = (out_dir / rid / f"{number}.m4s").stat().st_size
                    segments.append(Segment(number=number, start=t, duration=d, size=size))
                    number += 1
                    t += d
            channels = rep.find("d:AudioChannelConfiguration", NS)
            if channels is None:
                channels = aset.find("d:AudioChannelConfiguration", NS)

            def attr(name: str, rep: ET.Element = rep, aset: ET.Element = aset) -> str | None:
                # Attributes common to every representation may sit on the AdaptationSet
                # (Shaka puts a lone video representation's size there).
                return rep.get(name) or aset.get(name)

            rendition = Rendition(
                id=rid,
                kind=inp.kind,
                codecs=attr("codecs") or "",
                timescale=timescale,
                init_size=(out_dir / rid / "init.mp4").stat().st_size,
                segments=segments,
                width=_int_or_none(attr("width")),
                height=_int_or_none(attr("height")),
                frame_rate=inp.frame_rate,
                sample_rate=_int_or_none(attr("audioSamplingRate")),
                channels=int(channels.get("value", "2")) if channels is not None else None,
                language=inp.language,
                name=inp.name,
                default=inp.default,
                role=inp.role,
            )
            longest = max(longest, rendition.duration)
            renditions.append(rendition)
    missing = set(by_id) - {r.id for r in renditions}
    if missing:
        raise MediaError(f"packager produced no output for {sorted(missing)}")
    duration = _duration_seconds(root.get("mediaPresentationDuration", "")) or longest
    return Presentation(
        duration=duration, segment_seconds=options.segment_seconds, renditions=renditions
    )
